"""The weekly review: the week's figures from Postgres (`figures`), charts (`charts`), one
self-contained HTML page and a Markdown summary (`render`), written into the drive's `reports/`
folder and announced by a signed `weekly_review` alert (`review`)."""

from dynamic_assets.reports.review import (
    REPORTS_FOLDER,
    Review,
    announce,
    report_name,
    review_event,
    write_review,
)

__all__ = [
    "REPORTS_FOLDER",
    "Review",
    "announce",
    "report_name",
    "review_event",
    "write_review",
]
