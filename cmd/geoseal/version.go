package main

import (
	"context"
	"crypto/fips140"
	"flag"
	"fmt"
	"runtime"
	"runtime/debug"
)

const versionHelp = `Usage:

	geoseal version [--json]

version prints what an auditor records about the running binary: geoseal's
version (the module version it was built at, and the VCS revision when the
build recorded one), the Go version, and the FIPS 140-3 state: the version
of Go's cryptographic module compiled in (GOFIPS140; "latest" for the
module of the Go release itself), whether FIPS 140-3 mode is enabled
(GODEBUG=fips140=on or only) and whether it is enforced
(GODEBUG=fips140=only: what is not approved fails).

Flags:

	--json   print JSON: version, revision, go_version, platform,
	         fips140 {module_version, enabled, enforced}

Exit status: 0.
`

// versionCmd is `geoseal version`.
type versionCmd struct{ json bool }

func (c *versionCmd) flags(fs *flag.FlagSet) {
	fs.BoolVar(&c.json, "json", false, "print JSON")
}

// buildInfo is what `geoseal version --json` prints.
type buildInfo struct {
	Version   string     `json:"version"`
	Revision  string     `json:"revision,omitempty"`
	GoVersion string     `json:"go_version"`
	Platform  string     `json:"platform"`
	FIPS140   fips140Use `json:"fips140"`
}

// fips140Use is the FIPS 140-3 state of the running binary.
type fips140Use struct {
	ModuleVersion string `json:"module_version"`
	Enabled       bool   `json:"enabled"`
	Enforced      bool   `json:"enforced"`
}

// currentBuild describes the running binary.
func currentBuild() buildInfo {
	b := buildInfo{
		Version:   "(unknown)",
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		FIPS140:   fips140Use{ModuleVersion: fips140.Version(), Enabled: fips140.Enabled(), Enforced: fips140.Enforced()},
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		b.Version = bi.Main.Version
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				b.Revision = s.Value
			}
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.modified" && s.Value == "true" && b.Revision != "" {
				b.Revision += "+modified"
			}
		}
	}
	return b
}

func (c *versionCmd) run(ctx context.Context, env *environment, args []string) error {
	if err := positionalArgs(args, 0, ""); err != nil {
		return err
	}
	b := currentBuild()
	if c.json {
		return printJSON(env.stdout, b)
	}
	version := b.Version
	if b.Revision != "" {
		version += " (" + b.Revision + ")"
	}
	mode := "off"
	switch {
	case b.FIPS140.Enforced:
		mode = "enabled, enforced"
	case b.FIPS140.Enabled:
		mode = "enabled, not enforced"
	}
	_, err := fmt.Fprintf(env.stdout, "geoseal %s, %s %s; FIPS 140-3 module %s, FIPS mode %s\n", version, b.GoVersion, b.Platform, b.FIPS140.ModuleVersion, mode)
	return err
}
