package testkit

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"latchkey/server/testenv"
)

// Browser starts headless Chromium (Debian's package) with a fresh profile
// and returns a chromedp context. Without Chromium the test skips, or fails
// where LATCHKEY_REQUIRE includes "browser" (as in CI). Extra options go
// after the defaults (chromedp.Flag("accept-lang", "de") for a German user).
func Browser(t testing.TB, extra ...chromedp.ExecAllocatorOption) context.Context {
	t.Helper()
	exe := testenv.Chromium(t)
	dir := t.TempDir()
	opts := append([]chromedp.ExecAllocatorOption{},
		chromedp.ExecPath(exe),
		chromedp.UserDataDir(dir),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	opts = append(opts, extra...)
	if os.Getenv("LATCHKEY_CHROMIUM_FLAGS") != "" {
		opts = append(opts, chromedp.Flag(os.Getenv("LATCHKEY_CHROMIUM_FLAGS"), true))
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	if err := chromedp.Do(ctx); err != nil {
		cancelTimeout()
		cancelCtx()
		cancelAlloc()
		testenv.Unavailable(t, "browser", "chromium did not start: "+err.Error())
	}
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// NewTab opens another tab (sharing the browser's cookies).
func NewTab(t testing.TB, parent context.Context) context.Context {
	ctx, cancel := chromedp.NewContext(parent)
	t.Cleanup(cancel)
	return ctx
}
