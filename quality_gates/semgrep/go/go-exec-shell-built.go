package main

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
)

func bad(w http.ResponseWriter, r *http.Request) {
	dir := r.URL.Query().Get("dir")
	// ruleid: go-exec-shell-built
	exec.Command("sh", "-c", "ls "+dir).Run()
	// ruleid: go-exec-shell-built
	exec.Command("/bin/bash", "-c", fmt.Sprintf("tar xf %s", dir)).Run()
	// ruleid: go-exec-shell-built
	exec.CommandContext(context.Background(), "sh", "-c", dir).Run()
}

func good(r *http.Request) {
	dir := r.URL.Query().Get("dir")
	// ok: go-exec-shell-built
	exec.Command("ls", "-l", dir).Run()
	// ok: go-exec-shell-built
	exec.Command("sh", "-c", "make all").Run()
}
