package httpx

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// maxRedirects bounds the redirects a guarded download follows.
const maxRedirects = 5

var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// ForbiddenAddr refuses the addresses a URL taken from a vCon must not
// reach: loopback, private, link-local, multicast, unspecified and
// carrier-grade NAT ranges, where the cluster's own services live.
func ForbiddenAddr(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case !a.IsValid(),
		a.IsLoopback(), a.IsPrivate(), a.IsUnspecified(),
		a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast(), a.IsMulticast(),
		cgnat.Contains(a):
		return fmt.Errorf("refusing to download from internal address %s (set allow_private_networks: true to allow)", a)
	}
	return nil
}

// GuardedClient connects directly (no proxy: a proxy would hide the real
// destination from the check) and runs check on every address it dials,
// redirects and every DNS answer included, not just on the first
// hostname. A nil check is ForbiddenAddr.
func GuardedClient(check func(netip.AddrPort) error) *http.Client {
	if check == nil {
		check = func(ap netip.AddrPort) error { return ForbiddenAddr(ap.Addr()) }
	}
	dialer := &net.Dialer{
		Timeout: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("refusing to connect to unparsable address")
			}
			return check(ap)
		},
	}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           dialer.DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: time.Minute,
		MaxIdleConns:          10,
		IdleConnTimeout:       90 * time.Second,
	}
	return &http.Client{Transport: tr, CheckRedirect: CheckRedirect}
}

// WithRedirectCheck is base (http.DefaultClient when nil) following only
// http(s) redirects, at most five: for downloads that may reach private
// addresses but still must not be sent to file: or loop forever.
func WithRedirectCheck(base *http.Client) *http.Client {
	if base == nil {
		base = http.DefaultClient
	}
	c := *base
	c.CheckRedirect = CheckRedirect
	return &c
}

// CheckRedirect follows at most five redirects, and only to http(s).
func CheckRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return errors.New("too many redirects")
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return fmt.Errorf("refusing redirect to a %q URL", req.URL.Scheme)
	}
	return nil
}
