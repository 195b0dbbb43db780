#!/usr/bin/env python3
"""An independent S3 client for the tests of Strata's S3 endpoint: boto3, the AWS SDK
for Python, with its own signing, checksums and XML parsing.

  s3_client.py SCENARIO ENDPOINT ACCESS_KEY SECRET_KEY BUCKET [ARGS...]

Each scenario runs its steps against the endpoint, asserting as it goes, and prints one
line of JSON with what the Rust test checks further; it exits non-zero on the first
failed expectation. Keys are under a prefix of their own per run.

  objects    put (with metadata), head, get whole and ranged, conditional gets (304,
             412), copy, delete, delete many, the errors of a missing key and bucket
  listing    keys under a prefix listed with a delimiter, a page of two at a time, by
             ListObjectsV2 and by ListObjects (url-encoded names included)
  multipart SIZE_MIB
             an object of SIZE_MIB uploaded in 8 MiB parts, read back whole and
             compared; an aborted upload leaves no object
  raced-upload
             an upload in two parts completed after another client wrote its key
  auth       a wrong secret gets SignatureDoesNotMatch, an unsigned request AccessDenied,
             a presigned GET the bytes
  put-get SIZE_MIB
             puts one object of SIZE_MIB and reads it back, reporting both durations
  put KEY SIZE_MIB
             puts one object of SIZE_MIB (a fixed pattern) under KEY, prints its SHA-256
  read KEY COUNT
             reads KEY whole COUNT times, prints the distinct SHA-256 digests read
  start-upload KEY
             starts a multipart upload of KEY and stores one 6 MiB part; prints its id
  read-slowly KEY PAUSE_SECS
             reads the first MiB of KEY, pauses, reads the rest; prints its SHA-256
"""
import base64
import hashlib
import io
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import boto3
from boto3.s3.transfer import TransferConfig
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError


def client(endpoint, access_key, secret_key, signed=True):
    config = Config(
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1},
        signature_version="s3v4" if signed else UNSIGNED,
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name="us-east-1",
        config=config,
    )


def error_of(call):
    """The S3 error code and HTTP status a call fails with."""
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("the call succeeded")


def pattern(size, seed=7):
    block = hashlib.sha256(str(seed).encode()).digest() * 4096
    whole, rest = divmod(size, len(block))
    return block * whole + block[:rest]


def objects(s3, bucket, prefix):
    key = prefix + "hello.txt"
    body = b"hello, tiers" * 100
    put = s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=body,
        ContentType="text/plain",
        Metadata={"origin": "boto3", "team": "platform"},
    )
    etag = put["ETag"]
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(body), head
    assert head["ContentType"] == "text/plain", head
    assert head["Metadata"] == {"origin": "boto3", "team": "platform"}, head
    assert head["ETag"] == etag, (head["ETag"], etag)
    got = s3.get_object(Bucket=bucket, Key=key)
    assert got["Body"].read() == body
    assert got["Metadata"]["origin"] == "boto3"
    ranged = s3.get_object(Bucket=bucket, Key=key, Range="bytes=7-11")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["Body"].read() == body[7:12]
    assert ranged["ContentRange"] == f"bytes 7-11/{len(body)}", ranged["ContentRange"]
    suffix = s3.get_object(Bucket=bucket, Key=key, Range="bytes=-5")
    assert suffix["Body"].read() == body[-5:]
    assert error_of(
        lambda: s3.get_object(Bucket=bucket, Key=key, Range=f"bytes={len(body)}-")
    ) == ("InvalidRange", 416)
    # Conditional reads.
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key=key, IfNoneMatch=etag))[1] == 304
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key=key, IfMatch='"0000"')) == (
        "PreconditionFailed",
        412,
    )
    assert s3.get_object(Bucket=bucket, Key=key, IfMatch=etag)["Body"].read() == body
    future = datetime.now(timezone.utc) + timedelta(days=1)
    past = datetime.now(timezone.utc) - timedelta(days=1)
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key=key, IfModifiedSince=future))[1] == 304
    assert s3.get_object(Bucket=bucket, Key=key, IfModifiedSince=past)["Body"].read() == body
    assert error_of(
        lambda: s3.get_object(Bucket=bucket, Key=key, IfUnmodifiedSince=past)
    ) == ("PreconditionFailed", 412)
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key=key, IfNoneMatch=etag))[1] == 304
    # A body that does not match its Content-MD5 is refused and changes nothing.
    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    assert error_of(
        lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"corrupted", ContentMD5=wrong_md5)
    ) == ("BadDigest", 400)
    # Also one longer than a tier's part (8 MiB), which goes to an S3 tier in parts.
    assert error_of(
        lambda: s3.put_object(
            Bucket=bucket, Key=key, Body=pattern((8 << 20) + 1000), ContentMD5=wrong_md5
        )
    ) == ("BadDigest", 400)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    # So is a body that does not match its x-amz-checksum-crc32 (a header here; boto3's
    # own puts send theirs in the trailer, checked the same way).
    assert error_of(
        lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"corrupted", ChecksumCRC32="AAAAAA==")
    ) == ("BadDigest", 400)
    assert error_of(
        lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"x", ChecksumSHA256="AAAA")
    ) == ("BadDigest", 400)
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    right_md5 = base64.b64encode(hashlib.md5(b"checked").digest()).decode()
    s3.put_object(Bucket=bucket, Key=prefix + "checked", Body=b"checked", ContentMD5=right_md5)
    # Overwrite, copy, delete.
    s3.put_object(Bucket=bucket, Key=key, Body=b"second version")
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"second version"
    copy_key = prefix + "copy.txt"
    s3.copy_object(Bucket=bucket, Key=copy_key, CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key=copy_key)["Body"].read() == b"second version"
    s3.delete_object(Bucket=bucket, Key=copy_key)
    assert error_of(lambda: s3.get_object(Bucket=bucket, Key=copy_key)) == ("NoSuchKey", 404)
    s3.delete_object(Bucket=bucket, Key=copy_key)  # deleting twice is fine
    many = [prefix + f"many/{i}" for i in range(5)]
    for k in many:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    deleted = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": k} for k in many]})
    assert sorted(d["Key"] for d in deleted["Deleted"]) == sorted(many), deleted
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "many/")
    assert listed["KeyCount"] == 0, listed
    assert error_of(lambda: s3.get_object(Bucket="no-such-bucket", Key=key)) == (
        "NoSuchBucket",
        404,
    )
    empty_key = prefix + "empty"
    s3.put_object(Bucket=bucket, Key=empty_key, Body=b"")
    assert s3.get_object(Bucket=bucket, Key=empty_key)["Body"].read() == b""
    return {"key": key, "etag": etag}


def listing(s3, bucket, prefix):
    keys = [
        "a.txt",
        "b c+d%.txt",
        "dir1/x",
        "dir1/y",
        "dir2/deep/z",
        "e.txt",
        "f.txt",
        "é.txt",
    ]
    for k in keys:
        s3.put_object(Bucket=bucket, Key=prefix + k, Body=k.encode())
    expected_keys = sorted(prefix + k for k in keys if "/" not in k)
    expected_prefixes = [prefix + "dir1/", prefix + "dir2/"]
    pages = 0
    found_keys, found_prefixes = [], []
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": 2}
    ):
        pages += 1
        assert page["KeyCount"] <= 2, page
        found_keys += [o["Key"] for o in page.get("Contents", [])]
        found_prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert found_keys == sorted(found_keys, key=lambda k: k.encode()), found_keys
    assert sorted(found_keys) == expected_keys, (found_keys, expected_keys)
    assert found_prefixes == expected_prefixes, found_prefixes
    assert pages >= 4, pages
    v1_keys, v1_prefixes = [], []
    for page in s3.get_paginator("list_objects").paginate(
        Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": 3}
    ):
        v1_keys += [o["Key"] for o in page.get("Contents", [])]
        v1_prefixes += [p["Prefix"] for p in page.get("CommonPrefixes", [])]
    assert sorted(v1_keys) == expected_keys, v1_keys
    assert v1_prefixes == expected_prefixes, v1_prefixes
    flat = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "dir")
    assert [o["Key"] for o in flat["Contents"]] == [
        prefix + "dir1/x",
        prefix + "dir1/y",
        prefix + "dir2/deep/z",
    ], flat
    buckets = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert bucket in buckets, buckets
    return {"pages": pages}


def multipart(s3, bucket, prefix, size_mib):
    data = pattern(size_mib * 1024 * 1024 + 123)
    key = prefix + "big.bin"
    # Four parts at a time, as rclone and the AWS CLI's defaults send them.
    config = TransferConfig(
        multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024, max_concurrency=4
    )
    s3.upload_fileobj(io.BytesIO(data), bucket, key, Config=config)
    head = s3.head_object(Bucket=bucket, Key=key)
    assert head["ContentLength"] == len(data), head
    out = io.BytesIO()
    s3.download_fileobj(bucket, key, out, Config=config)
    assert hashlib.sha256(out.getvalue()).digest() == hashlib.sha256(data).digest(), "bytes differ"
    aborted = prefix + "aborted.bin"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=aborted)
    s3.upload_part(
        Bucket=bucket, Key=aborted, UploadId=upload["UploadId"], PartNumber=1, Body=data[: 6 << 20]
    )
    parts = s3.list_parts(Bucket=bucket, Key=aborted, UploadId=upload["UploadId"])
    assert [p["PartNumber"] for p in parts["Parts"]] == [1], parts
    wrong_md5 = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    assert error_of(
        lambda: s3.upload_part(
            Bucket=bucket,
            Key=aborted,
            UploadId=upload["UploadId"],
            PartNumber=2,
            Body=b"corrupted",
            ContentMD5=wrong_md5,
        )
    ) == ("BadDigest", 400)
    s3.abort_multipart_upload(Bucket=bucket, Key=aborted, UploadId=upload["UploadId"])
    assert error_of(lambda: s3.head_object(Bucket=bucket, Key=aborted))[1] == 404
    assert error_of(
        lambda: s3.upload_part(
            Bucket=bucket, Key=aborted, UploadId=upload["UploadId"], PartNumber=2, Body=b"x"
        )
    ) == ("NoSuchUpload", 404)
    return {"key": key, "size": len(data)}


def raced_upload(s3, bucket, prefix):
    """Another client writes the key between the start and the completion of an upload:
    the upload's object replaces what it wrote."""
    data = pattern(7 << 20)
    raced = prefix + "raced.bin"
    upload = s3.create_multipart_upload(Bucket=bucket, Key=raced)
    pieces = [data[: 6 << 20], data[6 << 20 : (6 << 20) + 1000]]
    etags = [
        s3.upload_part(
            Bucket=bucket, Key=raced, UploadId=upload["UploadId"], PartNumber=n, Body=piece
        )["ETag"]
        for n, piece in enumerate(pieces, start=1)
    ]
    s3.put_object(Bucket=bucket, Key=raced, Body=b"written meanwhile")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key=raced,
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"PartNumber": n, "ETag": e} for n, e in enumerate(etags, start=1)]},
    )
    assert s3.get_object(Bucket=bucket, Key=raced)["Body"].read() == b"".join(pieces), "raced bytes differ"
    return {"key": raced}


def auth(endpoint, access_key, secret_key, bucket, prefix):
    good = client(endpoint, access_key, secret_key)
    key = prefix + "signed.txt"
    good.put_object(Bucket=bucket, Key=key, Body=b"only for the key holder")
    wrong = client(endpoint, access_key, secret_key + "x")
    assert error_of(lambda: wrong.get_object(Bucket=bucket, Key=key)) == (
        "SignatureDoesNotMatch",
        403,
    )
    anonymous = client(endpoint, access_key, secret_key, signed=False)
    assert error_of(lambda: anonymous.get_object(Bucket=bucket, Key=key)) == ("AccessDenied", 403)
    url = good.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=300)
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"only for the key holder"
    tampered = url.replace("signed.txt", "other.txt")
    try:
        urllib.request.urlopen(tampered)
        raise AssertionError("a tampered presigned URL worked")
    except urllib.error.HTTPError as e:
        assert e.code == 403, e.code
    return {"key": key}


def put_get(s3, bucket, prefix, size_mib):
    data = pattern(size_mib * 1024 * 1024)
    key = prefix + "timed.bin"
    config = TransferConfig(multipart_threshold=8 * 1024 * 1024, multipart_chunksize=8 * 1024 * 1024)
    start = time.monotonic()
    s3.upload_fileobj(io.BytesIO(data), bucket, key, Config=config)
    put_secs = time.monotonic() - start
    out = io.BytesIO()
    start = time.monotonic()
    s3.download_fileobj(bucket, key, out, Config=config)
    get_secs = time.monotonic() - start
    assert out.getvalue() == data, "bytes differ"
    return {"key": key, "put_secs": put_secs, "get_secs": get_secs}


def put(s3, bucket, key, size_mib):
    data = pattern(int(float(size_mib) * 1024 * 1024))
    s3.upload_fileobj(io.BytesIO(data), bucket, key)
    return {"sha256": hashlib.sha256(data).hexdigest()}


def read(s3, bucket, key, count):
    digests = set()
    for _ in range(int(count)):
        digests.add(hashlib.sha256(s3.get_object(Bucket=bucket, Key=key)["Body"].read()).hexdigest())
    return {"sha256": sorted(digests)}


def read_slowly(s3, bucket, key, pause):
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    digest = hashlib.sha256(body.read(1024 * 1024))
    time.sleep(float(pause))
    while chunk := body.read(1024 * 1024):
        digest.update(chunk)
    return {"sha256": [digest.hexdigest()]}


def start_upload(s3, bucket, key):
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)
    s3.upload_part(
        Bucket=bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1, Body=pattern(6 << 20)
    )
    return {"upload_id": upload["UploadId"]}


def main():
    scenario, endpoint, access_key, secret_key, bucket = sys.argv[1:6]
    args = sys.argv[6:]
    prefix = f"boto3/{uuid.uuid4()}/"
    s3 = client(endpoint, access_key, secret_key)
    if scenario == "objects":
        result = objects(s3, bucket, prefix)
    elif scenario == "listing":
        result = listing(s3, bucket, prefix)
    elif scenario == "multipart":
        result = multipart(s3, bucket, prefix, int(args[0]))
    elif scenario == "raced-upload":
        result = raced_upload(s3, bucket, prefix)
    elif scenario == "auth":
        result = auth(endpoint, access_key, secret_key, bucket, prefix)
    elif scenario == "put-get":
        result = put_get(s3, bucket, prefix, int(args[0]))
    elif scenario == "put":
        result = put(s3, bucket, args[0], args[1])
    elif scenario == "read":
        result = read(s3, bucket, args[0], args[1])
    elif scenario == "start-upload":
        result = start_upload(s3, bucket, args[0])
    elif scenario == "read-slowly":
        result = read_slowly(s3, bucket, args[0], args[1])
    else:
        raise SystemExit(f"unknown scenario {scenario}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
