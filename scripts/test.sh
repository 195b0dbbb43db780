#!/usr/bin/env bash
# Runs the whole test suite against the real local stack:
#   1. installs the independent test clients and servers when missing (rclone;
#      Chromium and chromedriver; stunnel4; tansu with SQLite storage for SASL;
#      kafka-python; schemathesis; moto's S3 server; boto3, which moto brings; the
#      AWS CLI),
#   2. validates the container set-up offline (scripts/compose-check.sh: the compose
#      file, every .env.example variable passed through, hadolint on the Dockerfile),
#   3. brings up the stack (scripts/stack.sh up: PostgreSQL, tansu, three s3s-fs),
#   4. runs `cargo test` with any extra arguments passed through.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
export PATH="$HOME/.cargo/bin:$PATH"

if ! command -v rclone >/dev/null 2>&1; then
    echo "test: installing rclone (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rclone >/dev/null
fi

# Chromium and its WebDriver: a real browser for the console's tests (tests/console.rs).
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
    echo "test: installing chromium and chromium-driver (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi

# stunnel: a real TLS endpoint in front of Strata for the CLI's HTTPS test (tests/tls.rs).
if ! command -v stunnel4 >/dev/null 2>&1; then
    echo "test: installing stunnel4 (apt)" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq stunnel4 >/dev/null
fi

# tansu with SQLite storage, as `tansu-sasl`: a broker that requires sign-in and keeps
# its SCRAM users (the stack's tansu keeps its state in memory, where users are not
# kept), for the SASL test (tests/kafka_security.rs). Compiled once, several minutes.
TANSU_SASL_VERSION=0.6.0
if ! tansu-sasl --version 2>/dev/null | grep -q "$TANSU_SASL_VERSION"; then
    echo "test: installing tansu $TANSU_SASL_VERSION with SQLite storage as tansu-sasl (cargo install)" >&2
    tansu_root="${STACK_DIR:-$HOME/.cache/strata-stack}/tansu-sasl"
    cargo install --locked --quiet tansu --version "$TANSU_SASL_VERSION" \
        --no-default-features --features libsql --root "$tansu_root"
    install -m 755 "$tansu_root/bin/tansu" "$HOME/.cargo/bin/tansu-sasl"
fi

# kafka-python: an independent Kafka protocol implementation (not librdkafka) that the
# event tests produce and read with.
KAFKA_PYTHON_VERSION=3.0.12
if ! python3 -c "import kafka, sys; sys.exit(kafka.__version__ != '$KAFKA_PYTHON_VERSION')" 2>/dev/null; then
    echo "test: installing kafka-python $KAFKA_PYTHON_VERSION (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check "kafka-python==$KAFKA_PYTHON_VERSION"
fi

# schemathesis: fuzzes every operation of the OpenAPI document (tests/api_rest.rs).
SCHEMATHESIS_VERSION=4.32.5
if ! schemathesis --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
    echo "test: installing schemathesis $SCHEMATHESIS_VERSION (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# kubernetes-validate: the Kubernetes API schemas, bundled, to validate deploy/kubernetes/
# offline (tests/kubernetes.rs).
KUBERNETES_VALIDATE_VERSION=1.31.0
if ! kubernetes-validate --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE_VERSION"; then
    echo "test: installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

# moto's standalone S3 server: lists multipart uploads and their parts, which s3s-fs
# cannot (tests/mover_crash.rs sweeps an S3 tier on it; moto before 5.2.6 answers
# ListParts with a root element the AWS SDK refuses).
MOTO_VERSION=5.2.6
if ! python3 -c "import moto.server, sys; sys.exit(__import__('moto').__version__ != '$MOTO_VERSION')" 2>/dev/null; then
    echo "test: installing moto[server] $MOTO_VERSION (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION"
fi

# boto3: the AWS SDK for Python, an independent S3 client of Strata's S3 endpoint
# (tests/s3_endpoint.rs); moto depends on it, so it is normally there already.
if ! python3 -c "import boto3" 2>/dev/null; then
    echo "test: installing boto3 (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check boto3
fi

# The AWS CLI (v1, from PyPI): another independent S3 client of the endpoint. It pins
# botocore, so boto3 is pinned to the release made with that botocore.
AWSCLI_VERSION=1.45.11
BOTO3_VERSION=1.43.11
if ! aws --version 2>&1 | grep -q "aws-cli/$AWSCLI_VERSION "; then
    echo "test: installing awscli $AWSCLI_VERSION (pip)" >&2
    python3 -m pip install --quiet --disable-pip-version-check \
        "awscli==$AWSCLI_VERSION" "boto3==$BOTO3_VERSION"
fi

scripts/compose-check.sh
scripts/stack.sh up
cargo test "$@"
