// Command api serves conserver's HTTP API (port 8000, at /api/... and, as
// conserver does, without the /api prefix) on the Redis at REDIS_URL. See internal/api/README.md for its settings.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/api"
	"github.com/vcon-operator/vcon-operator/internal/logging"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
	"github.com/vcon-operator/vcon-operator/internal/telemetry"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/version"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "api:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		addr             = flag.String("addr", ":8000", "address to listen on")
		maxBody          = flag.Int64("max-body-bytes", api.DefaultMaxBodyBytes, "largest request body accepted; larger ones get 413 (env VCON_MAX_BODY_BYTES; the flag wins)")
		showSecrets      = flag.Bool("config-show-secrets", false, "answer GET /api/config with credentials as written, as conserver does (env VCON_CONFIG_SHOW_SECRETS; the flag wins)")
		insecureNoAuth   = flag.Bool("insecure-no-auth", false, "serve without API token when none is configured (conserver's default; never do this on a reachable network)")
		allowConfigWrite = flag.Bool("allow-config-write", false, "let POST /api/config overwrite CONSERVER_CONFIG_FILE")
		corsOrigins      = corsOriginsFlag(flag.CommandLine)
		supportedExts    = flag.String("supported-extensions", "", "extensions a vCon's critical list may name, comma-separated (\"none\" for none); a vCon naming another is refused with 422 (env VCON_SUPPORTED_EXTENSIONS; default CC; the flag wins)")
		shutdownWait     = flag.Duration("shutdown-timeout", 20*time.Second, "how long in-flight requests may take to finish on SIGTERM")
		showVersion      = flag.Bool("version", false, "print the version and exit")
	)
	flag.Parse()
	if *showVersion {
		fmt.Printf("%s %s %s\n", version.Version, version.GitCommit, version.BuildTime)
		return nil
	}
	log := logging.NewJSON(os.Stderr, nil)
	slog.SetDefault(log)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	shutdownTelemetry, err := telemetry.Setup(ctx, "api")
	if err != nil {
		return fmt.Errorf("telemetry: %w", err)
	}
	defer telemetry.Flush(shutdownTelemetry)

	opts, err := api.OptionsFromEnv(os.Getenv)
	if err != nil {
		return err
	}
	if err := applyFlags(flag.CommandLine, &opts, *maxBody, *showSecrets, *supportedExts); err != nil {
		return err
	}
	opts.InsecureNoAuth = *insecureNoAuth
	opts.AllowConfigWrite = *allowConfigWrite
	opts.CORSAllowedOrigins = corsOrigins()
	opts.Logger = log

	redisURL := os.Getenv("REDIS_URL")
	if redisURL == "" {
		redisURL = "redis://localhost:6379"
	}
	rdb, err := redisconn.Open(redisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()

	srv, err := api.New(rdb, opts)
	if err != nil {
		return err
	}
	defer srv.Close()
	if len(opts.Tokens) == 0 {
		log.Warn("serving WITHOUT authentication (--insecure-no-auth)")
	}

	hs := &http.Server{
		Addr:              *addr,
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       2 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.ListenAndServe() }()
	log.Info("api listening", "addr", *addr, "version", version.Version, "commit", version.GitCommit,
		"tokens", len(opts.Tokens), "config", opts.ConfigFile != "", "cors_allowed_origins", opts.CORSAllowedOrigins)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	c, cancel := context.WithTimeout(context.Background(), *shutdownWait)
	defer cancel()
	if err := hs.Shutdown(c); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// applyFlags lets the flags given on the command line override the
// settings their environment variables made (VCON_MAX_BODY_BYTES,
// VCON_CONFIG_SHOW_SECRETS); a flag left out keeps the environment's value.
func applyFlags(fs *flag.FlagSet, opts *api.Options, maxBody int64, showSecrets bool, supportedExts string) error {
	var err error
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "supported-extensions":
			exts, perr := vcon.ParseExtensions(supportedExts)
			if perr != nil {
				err = fmt.Errorf("--supported-extensions: %w", perr)
			}
			opts.SupportedExtensions = exts
		case "max-body-bytes":
			if maxBody <= 0 {
				err = fmt.Errorf("--max-body-bytes=%d: want 1 or more", maxBody)
			}
			opts.MaxBodyBytes = maxBody
		case "config-show-secrets":
			opts.ShowConfigSecrets = showSecrets
		}
	})
	return err
}

// corsOriginsFlag defines --cors-allowed-origins; the function it returns
// gives the origins after parsing (api.Options.CORSAllowedOrigins).
func corsOriginsFlag(fs *flag.FlagSet) func() []string {
	v := fs.String("cors-allowed-origins", strings.Join(api.DefaultCORSAllowedOrigins, ","),
		"comma-separated origins browsers may call the API from: * for any (conserver's default), or origins as browsers send them, such as https://app.example.com; empty allows none")
	return func() []string { return api.ParseCORSOrigins(*v) }
}
