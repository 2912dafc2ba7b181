// goclient - a Go HTTP client with no timeouts set, for the outside-mode
// tests (tests/realworld/test_outside.c): Go makes system calls itself,
// so LD_PRELOAD cannot reach it.
//
//	goclient URL [N]
//
// GETs URL N times (default 1) with net/http's default client and prints
// one line per request:
//
//	round=I ms=T status=S bytes=B err=E
//
// where err is "none" or the error's text (one line).
package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: goclient URL [N]")
		os.Exit(2)
	}
	n := 1
	if len(os.Args) > 2 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	for i := 0; i < n; i++ {
		t0 := time.Now()
		status, bytes, errText := 0, int64(0), "none"
		resp, err := http.Get(os.Args[1])
		if err == nil {
			status = resp.StatusCode
			bytes, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		if err != nil {
			errText = strings.ReplaceAll(err.Error(), "\n", " ")
		}
		fmt.Printf("round=%d ms=%d status=%d bytes=%d err=%s\n", i,
			time.Since(t0).Milliseconds(), status, bytes, errText)
	}
}
