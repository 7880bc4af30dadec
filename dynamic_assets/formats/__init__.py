"""Reading the file formats the drive holds, by one set of rules for loading and declaring.

`csv` (text columns streamed by Arrow), `json` (JSON arrays and JSON Lines, one object a record),
`parquet` (typed batches, cast to declared types), `errors` (`LoadError` naming the file and the
line or row), `hashing` (SHA-256 while the bytes stream past). Each reader takes the file's name
for messages and how to open its bytes, so local files and drive downloads read alike.
"""
