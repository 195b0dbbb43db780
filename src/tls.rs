//! TLS for every client the process opens (PostgreSQL through sqlx, the CLI's HTTPS
//! through reqwest, S3 through the AWS SDK): one provider, aws-lc-rs, which the AWS SDK
//! needs anyway.

/// Makes aws-lc-rs the process's TLS provider; later calls change nothing.
pub fn install_provider() {
    // Err means a provider is installed already, which is as good.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
