// A pgx (Go) client for the proxy's fingerprint test: logs in with the connection string
// it is given and runs one query. Built in GOPATH mode against Debian's pgx v4.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/jackc/pgx/v4"
)

func main() {
	conn, err := pgx.Connect(context.Background(), os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&n); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(n)
	conn.Close(context.Background())
}
