package main

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
)

func clients(pool *x509.CertPool) []*http.Client {
	// ruleid: go-tls-insecure-skip-verify
	lax := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	cfg := &tls.Config{}
	// ruleid: go-tls-insecure-skip-verify
	cfg.InsecureSkipVerify = true
	// ok: go-tls-insecure-skip-verify
	strict := &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool}
	// ok: go-tls-insecure-skip-verify
	off := &tls.Config{InsecureSkipVerify: false}
	var out []*http.Client
	for _, c := range []*tls.Config{lax, cfg, strict, off} {
		out = append(out, &http.Client{Transport: &http.Transport{TLSClientConfig: c}})
	}
	return out
}
