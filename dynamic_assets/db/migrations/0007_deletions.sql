-- Source files deleted from the drive: when the pipeline found a recorded file gone (status
-- 'deleted'). A version re-curated after this time no longer holds the file's rows; a curated
-- version whose every file is deleted keeps its rows and is reported by `dynamic-assets status`.
ALTER TABLE public.onedrive_ingest ADD COLUMN IF NOT EXISTS deleted_at timestamptz;
UPDATE public.onedrive_ingest SET deleted_at = updated_at
 WHERE status = 'deleted' AND deleted_at IS NULL;
