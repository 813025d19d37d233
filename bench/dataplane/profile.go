package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/pglink/pglink/internal/server"
)

// With -cpuprofile DIR the bench runs pglink as itself in profiledServe mode instead of the
// cmd/pglink binary: the same server.Run on the same configuration, plus a CPU profiler that
// the bench switches on (SIGUSR1: profile into the path written in DIR/next) and off
// (SIGUSR2) around each pgbench run through pglink. The product code is unchanged.
const profiledServe = "pglink-serve-profiled"

// profiledServeMain is `bench pglink-serve-profiled FLAGS`: pglink serve with a CPU profiler
// driven by signals.
func profiledServeMain(args []string) error {
	cfg := server.DefaultConfig()
	fs := flag.NewFlagSet(profiledServe, flag.ContinueOnError)
	fs.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "")
	fs.StringVar(&cfg.Listen, "listen", cfg.Listen, "")
	fs.StringVar(&cfg.EndpointNetwork, "endpoint-network", cfg.EndpointNetwork, "")
	fs.StringVar(&cfg.DNSListen, "dns-listen", cfg.DNSListen, "")
	fs.StringVar(&cfg.Gateway, "gateway", cfg.Gateway, "")
	fs.IntVar(&cfg.EventLoops, "event-loops", 0, "")
	dir := fs.String("cpuprofile", "", "directory of the control file 'next'")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGUSR1, syscall.SIGUSR2)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var f *os.File
		stopProfile := func() {
			if f != nil {
				pprof.StopCPUProfile()
				f.Close()
				f = nil
			}
		}
		defer stopProfile()
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sig:
				stopProfile()
				if s != syscall.SIGUSR1 {
					continue
				}
				b, err := os.ReadFile(filepath.Join(*dir, "next"))
				if err != nil {
					cfg.Logger.Error("cpu profile", "err", err)
					continue
				}
				if f, err = os.Create(strings.TrimSpace(string(b))); err != nil {
					cfg.Logger.Error("cpu profile", "err", err)
					continue
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					cfg.Logger.Error("cpu profile", "err", err)
					f.Close()
					f = nil
				}
			}
		}
	}()
	err := server.Run(ctx, cfg)
	stop()
	<-done
	return err
}

// profiler switches the CPU profile of a pglink started in profiledServe mode.
type profiler struct {
	dir string // "" when not profiling
	pid int
	n   int
}

// start profiles pglink into DIR/<seq>-<name>.pprof until stop.
func (p *profiler) start(name string) (string, error) {
	if p == nil || p.dir == "" {
		return "", nil
	}
	p.n++
	out := filepath.Join(p.dir, fmt.Sprintf("%02d-%s.pprof", p.n, strings.NewReplacer(" ", "", "=", "", "-", "").Replace(name)))
	if err := os.WriteFile(filepath.Join(p.dir, "next"), []byte(out), 0o644); err != nil {
		return "", err
	}
	return out, syscall.Kill(p.pid, syscall.SIGUSR1)
}

func (p *profiler) stop() error {
	if p == nil || p.dir == "" {
		return nil
	}
	return syscall.Kill(p.pid, syscall.SIGUSR2)
}
