"""The drive: the team's OneDrive folder, or a local folder laid out the same way.

Both implement `Drive`: list items under a folder (listing only, no downloads), open a file as a
byte stream, and write a file. Paths are posix paths relative to the drive root
(`datasets/market/2024-06-01/nyse.csv`).
"""

from dynamic_assets.drive.base import Drive, DriveItem
from dynamic_assets.drive.local import LocalDrive

__all__ = ["Drive", "DriveItem", "LocalDrive"]
