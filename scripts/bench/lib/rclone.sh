# rclone remotes for a bench script, set in the environment (no rclone.conf); sourced
# after the stack's .stack/stack.env.
# rclone 1.60 refuses to start when AWS_CA_BUNDLE is set; the stack's endpoints are plain
# HTTP.
unset AWS_CA_BUNDLE

rclone_remote() { # NAME ENDPOINT KEY SECRET: the remote NAME on an S3 server
    export "RCLONE_CONFIG_$1_TYPE=s3" "RCLONE_CONFIG_$1_PROVIDER=Other" \
        "RCLONE_CONFIG_$1_ENDPOINT=$2" "RCLONE_CONFIG_$1_ACCESS_KEY_ID=$3" \
        "RCLONE_CONFIG_$1_SECRET_ACCESS_KEY=$4" "RCLONE_CONFIG_$1_FORCE_PATH_STYLE=true" \
        "RCLONE_CONFIG_$1_REGION=us-east-1"
}

tier_remote() { # NAME TIER: the remote NAME on the stack's server of TIER (PUBLIC, ...)
    local endpoint=TIER_$2_ENDPOINT key=TIER_$2_ACCESS_KEY_ID secret=TIER_$2_SECRET_ACCESS_KEY
    rclone_remote "$1" "${!endpoint}" "${!key}" "${!secret}"
}
