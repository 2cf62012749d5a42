// Command latchkey is an OpenID Connect identity provider with
// passwordless magic-link login.
//
//	latchkey                                  serve ./realm.yaml
//	latchkey serve --config FILE [--listen ADDR] [--dsn DSN]
//	latchkey check --config FILE              validate; exit 2 on error
//	latchkey keys rotate --config FILE        add a new signing key
//	latchkey users list|get|disable|enable|delete|logout --config FILE ...
//	latchkey users set-password --config FILE --email ADDR [--create]   (password on stdin)
//	latchkey users hash-password              (password on stdin; prints a bcrypt hash)
//	latchkey events tail --config FILE [--follow]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"

	"latchkey/authenticators/password"
	"latchkey/server"
	"latchkey/server/admin"
	"latchkey/server/config"
	"latchkey/server/httplimit"
	"latchkey/server/observe"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

const usage = `usage:
  latchkey [serve] [--config realm.yaml] [--listen ADDR] [--dsn DSN]
  latchkey check --config FILE
  latchkey keys rotate --config FILE
  latchkey users list --config FILE [--search S] [--email ADDR] [--enabled true|false] [--first N] [--max N]
  latchkey users get|disable|enable|delete|logout --config FILE (ID | --email ADDR)
  latchkey users set-password --config FILE --email ADDR [--create]   (password on stdin)
  latchkey users hash-password                             (password on stdin)
  latchkey magic-link create --config FILE (--email ADDR | --user-id ID) --client ID --redirect-uri URI
                             [--ttl 1h] [--send] [--type login|verify-email] [--force-create] [--update-profile]
  latchkey magic-link list --config FILE [--email ADDR] [--user-id ID] [--status pending|used|expired|revoked|approved]
  latchkey magic-link revoke --config FILE ID
  latchkey events tail --config FILE [--type LOGIN,LOGIN_ERROR] [--user ID] [--max 20] [--follow]
`

// verbs are the commands latchkey knows.
var verbs = []string{"serve", "check", "keys rotate", "users set-password", "users hash-password",
	"users list", "users get", "users disable", "users enable", "users delete", "users logout",
	"magic-link create", "magic-link list", "magic-link revoke", "events tail"}

// sectionsOf are the top-level realm.yaml sections a verb reads: only
// their environment variables must be set (nil: every section).
func sectionsOf(cmd string) []string {
	switch {
	case cmd == "keys rotate":
		return []string{"realm", "database", "tokens"}
	case cmd == "magic-link list", cmd == "magic-link revoke", cmd == "events tail", strings.HasPrefix(cmd, "users "):
		return []string{"realm", "database", "i18n"}
	}
	return nil
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	if cmd == "keys" || cmd == "users" || cmd == "magic-link" || cmd == "events" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			fmt.Fprint(stderr, usage)
			return 2
		}
		cmd, args = cmd+" "+args[0], args[1:]
	}
	if !slices.Contains(verbs, cmd) {
		fmt.Fprint(stderr, usage)
		return 2
	}
	// Each verb has only its own flags (check --email is an error), and --help.
	fs := flag.NewFlagSet("latchkey "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	empty := ""
	cfgPath, listen, dsn, email := &empty, &empty, &empty, &empty
	if cmd != "users hash-password" {
		cfgPath = fs.String("config", "realm.yaml", "realm configuration file")
	}
	logFormat := &empty
	if cmd == "serve" {
		listen = fs.String("listen", "", "listen address (overrides server.listen)")
		logFormat = fs.String("log-format", "", "text or json (overrides server.logFormat)")
	}
	if cmd != "check" && cmd != "users hash-password" {
		dsn = fs.String("dsn", "", "database DSN (overrides database.dsn)")
	}
	if cmd == "magic-link create" || cmd == "magic-link list" || (strings.HasPrefix(cmd, "users ") && cmd != "users hash-password") {
		email = fs.String("email", "", "the user's email")
	}
	ml := magicLinkFlags(fs, strings.TrimPrefix(cmd, "magic-link "))
	uf := userFlags(fs, strings.TrimPrefix(cmd, "users "))
	ef := eventFlags(fs, cmd)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: latchkey %s [flags]\n", cmd)
		fs.PrintDefaults()
	}
	// Flags may come before or after positional arguments (revoke ID --config F).
	var positional []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return 0
		} else if err != nil {
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	level := slog.LevelInfo
	if v := os.Getenv("LATCHKEY_LOG_LEVEL"); v != "" {
		if err := level.UnmarshalText([]byte(v)); err != nil {
			fmt.Fprintln(stderr, "latchkey: LATCHKEY_LOG_LEVEL must be debug, info, warn or error")
			return 2
		}
	}
	if f := *logFormat; f != "" && f != "text" && f != "json" {
		fmt.Fprintln(stderr, "latchkey: --log-format must be text or json")
		return 2
	}

	if cmd == "users hash-password" {
		pw, err := readPassword(stdin)
		if err == nil {
			var h string
			if h, err = password.Hash(pw); err == nil {
				fmt.Fprintln(stdout, h)
				return 0
			}
		}
		fmt.Fprintln(stderr, "latchkey:", err)
		return 1
	}

	cfg, err := server.LoadConfig(*cfgPath, sectionsOf(cmd)...)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	if *listen != "" {
		if err := cfg.SetListen(*listen); err != nil {
			fmt.Fprintln(stderr, "latchkey:", err)
			return 2
		}
	}
	if *dsn != "" {
		cfg.Database.DSN = *dsn
	}
	switch cmd {
	case "check":
		fmt.Fprintf(stdout, "%s: ok (realm %s, %d clients, %d flows, browser flow %q)\n", *cfgPath, cfg.Realm, len(cfg.Clients), len(cfg.Flows), cfg.Bindings["browser"])
		return 0
	case "serve":
		format := cfg.Server.LogFormat
		if *logFormat != "" {
			format = *logFormat
		}
		banner := stderr
		if format == "json" {
			banner = io.Discard // every line on stderr stays JSON
		}
		reload := func() (*config.Config, error) {
			next, err := server.LoadConfig(*cfgPath)
			if err != nil {
				return nil, err
			}
			if *listen != "" {
				if err := next.SetListen(*listen); err != nil {
					return nil, err
				}
			}
			if *dsn != "" {
				next.Database.DSN = *dsn
			}
			return next, nil
		}
		return serve(cfg, reload, observe.NewLogger(stderr, format, level), stderr, banner)
	case "magic-link create":
		ctx := context.Background()
		srv, err := server.New(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			fmt.Fprintln(stderr, "latchkey:", err)
			return 1
		}
		defer srv.Close()
		return magicLink(ctx, srv.Admin(), "create", *email, ml, positional, stdout, stderr)
	default: // verbs that need only the database
		ctx := context.Background()
		st, err := server.OpenStore(cfg)
		if err != nil {
			fmt.Fprintln(stderr, "latchkey:", err)
			return 1
		}
		defer st.Close()
		switch {
		case cmd == "keys rotate":
			kid, err := server.RotateKey(ctx, cfg, st)
			if err != nil {
				fmt.Fprintln(stderr, "latchkey:", err)
				return 1
			}
			fmt.Fprintf(stdout, "new signing key %s (%s); the previous key stays published until its tokens expire\n", kid, cfg.Tokens.SigningAlgorithm)
			return 0
		case strings.HasPrefix(cmd, "magic-link "):
			return magicLink(ctx, &admin.Service{Cfg: cfg, Store: st}, strings.TrimPrefix(cmd, "magic-link "), *email, ml, positional, stdout, stderr)
		case cmd == "events tail":
			if err := eventsTail(st, cfg.Realm, ef, stdout); err != nil {
				fmt.Fprintln(stderr, "latchkey:", err)
				return 1
			}
			return 0
		}
		return users(ctx, server.UserDirectory(cfg, st), strings.TrimPrefix(cmd, "users "), *email, uf, positional, stdin, stdout, stderr)
	}
}

// defaultGCPercent is the garbage collector's target when GOGC is not set.
// The server's live heap is small (~10 MB), so at Go's default (100) it
// collects every ~10 MB allocated, about every 20 logins; 200 halves that
// work (~4-8% of a login's CPU) for ~10 MB more memory. An operator's GOGC
// wins.
const defaultGCPercent = 200

// serve runs the server; banner gets the human-readable "Log in:" lines.
// SIGHUP reloads realm.yaml through reload.
func serve(cfg *config.Config, reload func() (*config.Config, error), log *slog.Logger, stderr, banner io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGCPercent)
	}
	srv, err := server.New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "latchkey:", err)
		return 1
	}
	defer srv.Close()
	if addr := os.Getenv("LATCHKEY_PPROF"); addr != "" {
		// Profiling, on its own listener (keep it on loopback).
		go func() { log.Warn("pprof listener stopped", "err", http.ListenAndServe(addr, pprofMux())) }()
	}
	l, err := net.Listen("tcp", cfg.Server.Listen)
	if err != nil {
		fmt.Fprintln(stderr, "latchkey:", err)
		return 1
	}
	if addr := cfg.Server.ManagementListen; addr != "" {
		ml, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(stderr, "latchkey: server.managementListen:", err)
			return 1
		}
		msrv := httplimit.Server(srv.Management, log)
		go func() { _ = msrv.Serve(ml) }()
		defer msrv.Close()
		log.Info("management listener: metrics and health", "listen", ml.Addr().String(), "paths", "/metrics /health/live /health/ready")
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			reloadConfig(ctx, srv, reload, log)
		}
	}()
	iss := cfg.Issuer()
	log.Info("Latchkey is serving", "realm", cfg.Realm, "listen", l.Addr().String(), "issuer", iss, "database", cfg.Database.Driver)
	if cfg.SMTP.DevMailbox {
		log.Warn("smtp.devMailbox is on: mail is NOT delivered; read it in the development mailbox", "mailbox", iss+"/dev/mail")
	}
	fmt.Fprintf(banner, "\n  Latchkey realm %q\n  Discovery:  %s/.well-known/openid-configuration\n", cfg.Realm, iss)
	fmt.Fprintf(banner, "  Log in:     %s/account  (apps: point them at the issuer %s)\n", iss, iss)
	if cfg.SMTP.DevMailbox {
		fmt.Fprintf(banner, "  Mailbox:    %s/dev/mail  (development: links are shown here)\n", iss)
	}
	fmt.Fprintln(banner)
	if err := srv.Serve(ctx, l); err != nil {
		fmt.Fprintln(stderr, "latchkey:", err)
		return 1
	}
	log.Info("Latchkey stopped")
	return 0
}

// reloadConfig applies realm.yaml again (SIGHUP): a file that does not
// validate changes nothing.
func reloadConfig(ctx context.Context, srv *server.Server, reload func() (*config.Config, error), log *slog.Logger) {
	next, err := reload()
	if err != nil {
		var errs config.Errors
		if !errors.As(err, &errs) {
			errs = config.Errors{err.Error()}
		}
		log.Error("realm.yaml not reloaded: the running configuration stays", "event", "config_reload_failed", "errors", []string(errs))
		return
	}
	needRestart, err := srv.Reload(ctx, next)
	if err != nil {
		log.Error("realm.yaml not reloaded: the running configuration stays", "event", "config_reload_failed", "errors", []string{err.Error()})
		return
	}
	if len(needRestart) > 0 {
		log.Warn("realm.yaml changes settings that need a restart; they keep their running values", "event", "config_reload_restart_needed", "settings", needRestart)
	}
	log.Info("realm.yaml reloaded", "event", "config_reloaded", "clients", len(next.Clients), "flows", len(next.Flows))
}

func pprofMux() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/heap", pprof.Index)
	return mux
}

func readPassword(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input")
	}
	return pw, nil
}
