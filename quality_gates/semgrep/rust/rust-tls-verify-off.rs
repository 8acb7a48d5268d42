fn clients(ca: reqwest::Certificate) -> reqwest::Result<Vec<reqwest::Client>> {
    // ruleid: rust-tls-verify-off
    let lax = reqwest::Client::builder().danger_accept_invalid_certs(true).build()?;
    // ruleid: rust-tls-verify-off
    let named = reqwest::Client::builder().danger_accept_invalid_hostnames(true).build()?;
    // ok: rust-tls-verify-off
    let strict = reqwest::Client::builder().add_root_certificate(ca).build()?;
    // ok: rust-tls-verify-off
    let off = reqwest::Client::builder().danger_accept_invalid_certs(false).build()?;
    Ok(vec![lax, named, strict, off])
}

fn rustls_config(mut config: rustls::ClientConfig, verifier: std::sync::Arc<NoVerifier>) {
    // ruleid: rust-tls-verify-off
    config.dangerous().set_certificate_verifier(verifier);
}
