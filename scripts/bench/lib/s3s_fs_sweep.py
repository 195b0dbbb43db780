#!/usr/bin/env python3
"""Removes what s3s-fs keeps of deleted objects: beside each object it writes
`.bucket-<bucket>.object-<key>.metadata.json` and `...internal.json` into the root of
its directory (names in unpadded URL-safe base64) and leaves both there when the object
goes, or when a bench removes its files directly; it also leaves the directories a
deleted key's slashes made. A root fills with them run after run, and the server slows
as its directories grow. Only files whose object is gone (and that belong to no
multipart upload) are removed, and empty directories inside buckets (in a bench's
stack, none is an object of its own).

    scripts/bench/lib/s3s_fs_sweep.py ROOT ...   # the s3s-fs servers' directories
"""
import base64
import os
import re
import sys

NAME = re.compile(r"^\.bucket-([A-Za-z0-9_-]+)\.object-([A-Za-z0-9_-]+)\.(metadata|internal)\.json$")


def decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()


removed = 0
for root in sys.argv[1:]:
    for bucket in os.scandir(root):
        if bucket.is_dir() and not bucket.name.startswith("."):
            for path, _, _ in os.walk(bucket.path, topdown=False):
                if path != bucket.path and not os.listdir(path):
                    os.rmdir(path)
                    removed += 1
    for entry in os.scandir(root):
        match = NAME.match(entry.name)
        if not match:
            continue
        try:
            bucket, key = decode(match[1]), decode(match[2])
        except (ValueError, UnicodeDecodeError):
            continue
        if not os.path.exists(os.path.join(root, bucket, key)):
            os.remove(entry.path)
            removed += 1
print(f"s3s-fs sweep: removed {removed} files and directories of deleted objects", file=sys.stderr)
