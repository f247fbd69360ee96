// Command firsttoken measures how long the first token of an LLM stream takes from the upstream to
// the client: it keeps a number of OpenAI chat streams in flight against a URL (aviary-fakellm
// directly, or a gateway in front of it) for a while, and for every stream reads the time that
// aviary-fakellm --stamp wrote into its first content chunk and subtracts it from the time the
// chunk was read. Client and upstream must share a clock, so both run on the same machine.
//
// It prints one line, for bench/llmtee.sh to read:
//
//	AVIARY_FIRSTTOKEN streams=N p50_us=… p90_us=… p99_us=… max_us=… errors=N
//
// Usage: firsttoken -url http://127.0.0.1:PORT/v1/chat/completions [-streams 64] [-duration 10s]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"aviary.dev/aviary/internal/fakellm"
)

const body = `{"model":"m","stream":true,"messages":[{"role":"user","content":"hello there"}]}`

func main() {
	url := flag.String("url", "", "the chat completions URL to stream from")
	streams := flag.Int("streams", 64, "streams kept in flight")
	duration := flag.Duration("duration", 10*time.Second, "how long to start new streams")
	flag.Parse()
	if *url == "" || *streams < 1 || *duration <= 0 {
		fmt.Fprintln(os.Stderr, "firsttoken: -url is required; -streams and -duration must be positive (see -help)")
		os.Exit(2)
	}
	held, errs := run(*url, *streams, *duration)
	if len(held) == 0 {
		fmt.Fprintf(os.Stderr, "firsttoken: no stream gave a stamped first token (%d errors); is the upstream aviary-fakellm --stamp?\n", errs)
		os.Exit(1)
	}
	slices.Sort(held)
	q := func(p float64) int64 { return held[min(len(held)-1, int(p*float64(len(held))))].Microseconds() }
	fmt.Printf("AVIARY_FIRSTTOKEN streams=%d p50_us=%d p90_us=%d p99_us=%d max_us=%d errors=%d\n",
		len(held), q(0.50), q(0.90), q(0.99), held[len(held)-1].Microseconds(), errs)
}

// run keeps streams in flight until the duration is over and returns the first-token delays.
func run(url string, streams int, duration time.Duration) ([]time.Duration, int) {
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: streams}}
	var (
		mu   sync.Mutex
		held []time.Duration
		errs int
		wg   sync.WaitGroup
	)
	for range streams {
		wg.Go(func() {
			for ctx.Err() == nil {
				d, err := firstToken(client, url)
				mu.Lock()
				if err != nil {
					errs++
				} else {
					held = append(held, d)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return held, errs
}

// firstToken streams one answer to its end and returns how long its first content chunk took.
func firstToken(client *http.Client, url string) (time.Duration, error) {
	resp, err := client.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	var held time.Duration
	found := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if found {
			continue // read to the end, so the connection is reused
		}
		i := strings.Index(line, " "+fakellm.StampPrefix) // after the quality marker
		if i < 0 || !strings.HasPrefix(line, "data: ") {
			continue
		}
		now := time.Now()
		rest := line[i+1+len(fakellm.StampPrefix):]
		end := strings.IndexFunc(rest, func(r rune) bool { return r < '0' || r > '9' })
		if end < 0 {
			end = len(rest)
		}
		ns, err := strconv.ParseInt(rest[:end], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("stamp %q: %w", rest, err)
		}
		held, found = now.Sub(time.Unix(0, ns)), true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, errors.New("no stamped chunk in the stream")
	}
	return held, nil
}
