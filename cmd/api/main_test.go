package main

import (
	"flag"
	"fmt"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/api"
)

func TestFlagsOverrideTheEnvironment(t *testing.T) {
	cases := []struct {
		name      string
		env       map[string]string
		args      []string
		wantBytes int64 // 0: api.DefaultMaxBodyBytes applies
		wantShow  bool
		wantExts  string // fmt of SupportedExtensions; "[]" for nil
		wantErr   bool
	}{
		{name: "neither", wantBytes: 0},
		{name: "env only", env: map[string]string{"VCON_MAX_BODY_BYTES": "4096", "VCON_CONFIG_SHOW_SECRETS": "true"}, wantBytes: 4096, wantShow: true},
		{name: "flag only", args: []string{"--max-body-bytes=2048", "--config-show-secrets"}, wantBytes: 2048, wantShow: true},
		{name: "flag wins", env: map[string]string{"VCON_MAX_BODY_BYTES": "4096", "VCON_CONFIG_SHOW_SECRETS": "true"},
			args: []string{"--max-body-bytes=2048", "--config-show-secrets=false"}, wantBytes: 2048},
		{name: "zero flag", args: []string{"--max-body-bytes=0"}, wantErr: true},
		{name: "extensions env", env: map[string]string{"VCON_SUPPORTED_EXTENSIONS": "CC, x-lawful"}, wantExts: "[CC x-lawful]"},
		{name: "extensions flag wins", env: map[string]string{"VCON_SUPPORTED_EXTENSIONS": "CC"}, args: []string{"--supported-extensions=none"}, wantExts: "[]"},
		{name: "bad extension", args: []string{"--supported-extensions=a b"}, wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			opts, err := api.OptionsFromEnv(func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			fs := flag.NewFlagSet("api", flag.ContinueOnError)
			maxBody := fs.Int64("max-body-bytes", api.DefaultMaxBodyBytes, "")
			show := fs.Bool("config-show-secrets", false, "")
			exts := fs.String("supported-extensions", "", "")
			if err := fs.Parse(tc.args); err != nil {
				t.Fatal(err)
			}
			err = applyFlags(fs, &opts, *maxBody, *show, *exts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if opts.MaxBodyBytes != tc.wantBytes || opts.ShowConfigSecrets != tc.wantShow {
				t.Errorf("MaxBodyBytes %d, ShowConfigSecrets %v; want %d, %v", opts.MaxBodyBytes, opts.ShowConfigSecrets, tc.wantBytes, tc.wantShow)
			}
			if tc.wantExts == "" {
				tc.wantExts = "[]"
			}
			if got := fmt.Sprint(opts.SupportedExtensions); got != tc.wantExts {
				t.Errorf("SupportedExtensions %s, want %s", got, tc.wantExts)
			}
		})
	}
}

func TestCORSAllowedOriginsFlag(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{nil, []string{"*"}}, // conserver's allow_origins=["*"]
		{[]string{"--cors-allowed-origins=https://app.example.com, http://localhost:3000"}, []string{"https://app.example.com", "http://localhost:3000"}},
		{[]string{"--cors-allowed-origins="}, []string{}},
	}
	for _, tc := range cases {
		fs := flag.NewFlagSet("api", flag.ContinueOnError)
		origins := corsOriginsFlag(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := origins(); fmt.Sprint(got) != fmt.Sprint(tc.want) || got == nil {
			t.Errorf("%v: origins %q, want %q", tc.args, got, tc.want)
		}
	}
}
