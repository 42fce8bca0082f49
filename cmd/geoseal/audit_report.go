package main

import (
	"html/template"
	"io"

	"github.com/geoseal/geoseal/envelope/blobstore"
)

// The HTML page of geoseal audit --report, for filing. html/template
// escapes every value: blob names, key ids and metadata are chosen by
// whoever can write to the container, and must not become markup.

// findingRow is one row of the findings table, spooled as the findings
// come.
var findingRow = template.Must(template.New("row").Parse(
	`<tr><td class="kind {{.Kind}}">{{.Kind}}</td><td><code>{{.Blob}}</code>` +
		`{{if .Snapshot}} <span class="copy">snapshot {{.Snapshot}}</span>{{end}}` +
		`{{if .VersionID}} <span class="copy">version {{.VersionID}}</span>{{end}}</td>` +
		`<td>{{.Format}}</td><td>{{range $i, $k := .KeyIDs}}{{if $i}}<br>{{end}}<code>{{$k}}</code>{{end}}</td>` +
		`<td>{{.Detail}}</td></tr>` + "\n"))

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"format":     func(s *auditSummary, f string) int64 { return s.ByFormat[f] },
	"findingN":   func(s *auditSummary, k string) int64 { return s.FindingCount[k] },
	"formats":    func() []string { return reportFormats },
	"kinds":      func() []string { return findingOrder },
	"yesno":      yesno,
	"yesnoPtr":   func(b *bool) string { return yesnoPtr(b) },
	"dateTime":   func(s *auditSummary) string { return s.Finished.Format("2006-01-02 15:04:05 MST") },
	"hasUnknown": func(s *auditSummary) bool { return s.ByFormat[blobstore.FormatUnknown] > 0 },
}).Parse(`{{define "head"}}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>geoseal audit of {{.S.Container}}</title>
<style>
body { font-family: sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
td.num { text-align: right; }
.allowed { color: #060; font-weight: bold; }
.refused { color: #a00; font-weight: bold; }
.kind.not-encrypted, .kind.cannot-open { color: #a00; font-weight: bold; }
code { font-size: 0.9em; word-break: break-all; }
</style>
</head>
<body>
<h1>geoseal audit of container {{.S.Container}}</h1>
<table>
<tr><th>Container URL</th><td><code>{{.S.URL}}</code></td></tr>
<tr><th>Prefix</th><td><code>{{.S.Prefix}}</code></td></tr>
{{if .S.Shard}}<tr><th>Shard</th><td>{{.S.Shard}}</td></tr>{{end}}
<tr><th>Audited</th><td>{{.S.Started.Format "2006-01-02 15:04:05 MST"}} to {{dateTime .S}}</td></tr>
<tr><th>Tool</th><td>{{.S.Tool}}</td></tr>
<tr><th>FIPS 140-3 module</th><td>{{.S.FIPS.ModuleVersion}}; FIPS mode enabled: {{yesno .S.FIPS.Enabled}}; non-approved algorithms refused: {{yesno .S.FIPS.Enforced}}</td></tr>
</table>

<h2>Blobs by format</h2>
<table>
<tr><th>Format</th><th>Blobs</th></tr>
{{range formats}}<tr><td>{{.}}</td><td class="num">{{format $.S .}}</td></tr>
{{end}}{{if hasUnknown .S}}<tr><td>unknown</td><td class="num">{{format $.S "unknown"}}</td></tr>
{{end}}<tr><th>Total</th><th class="num">{{.S.Blobs}}</th></tr>
</table>
<p>Besides the blobs: {{.S.Snapshots}} snapshots and {{.S.Versions}} previous versions.</p>

<h2>Region</h2>
{{with .S.Region}}{{if .Decision}}<p class="{{if .Decision.Allowed}}allowed{{else}}refused{{end}}">{{if .Decision.Allowed}}Allowed{{else}}Refused{{end}} under policy {{.Decision.Policy}} ({{.Decision.PolicyCitation}})</p>
<p>{{.Text}}</p>
<table>
<tr><th>Role</th><th>Region</th><th>Country</th><th>Allowed</th><th>Rule</th><th>Reason</th></tr>
<tr><td>primary</td><td>{{.Decision.Primary.Region}}</td><td>{{.Decision.Primary.CountryName}}</td><td>{{yesno .Decision.Primary.Allowed}}</td><td>{{.Decision.Primary.Rule}}</td><td>{{.Decision.Primary.Reason}}</td></tr>
{{with .Decision.Secondary}}<tr><td>secondary</td><td>{{.Region}}</td><td>{{.CountryName}}</td><td>{{yesno .Allowed}}</td><td>{{.Rule}}</td><td>{{.Reason}}</td></tr>{{end}}
{{range .Decision.Copies}}<tr><td>{{.Role}} of {{.Holder}}</td><td>{{.Region}}</td><td>{{.CountryName}}</td><td>{{yesno .Allowed}}</td><td>{{.Rule}}</td><td>{{.Reason}}</td></tr>
{{end}}</table>
{{with .Decision.Location}}<table>
<tr><th>Location source</th><td>{{.Source}}</td></tr>
<tr><th>SKU</th><td>{{.SKU}}{{if .TargetSKU}} (converting to {{.TargetSKU}}){{end}}</td></tr>
<tr><th>Geo-replicated</th><td>{{yesno .GeoReplicated}}{{if .Secondary}} to {{.Secondary}} ({{.SecondarySource}}){{end}}</td></tr>
<tr><th>Failover</th><td>in progress: {{yesno .FailoverInProgress}}{{if .GeoReplicationStatus}}; replication {{.GeoReplicationStatus}}{{end}}{{if .LastGeoFailoverTime}}; last failover {{.LastGeoFailoverTime}}{{end}}</td></tr>
{{if .ReplicatesTo}}<tr><th>Object replication to</th><td>{{range .ReplicatesTo}}<code>{{.Account}}</code> ({{.Primary}}) {{end}}</td></tr>{{end}}
</table>{{end}}
<p>Catalog as of {{.Decision.CatalogAsOf}}{{if .Decision.PolicyAsOf}}, policy as of {{.Decision.PolicyAsOf}}{{end}}.</p>
{{else}}<p class="refused">{{.Text}}</p>{{end}}{{end}}

<h2>Keys</h2>
{{if .S.Keys}}<table>
<tr><th>Key given</th><th>Objects it opens</th><th>Type</th><th>HSM</th><th>Exportable</th><th>Vault region</th></tr>
{{range .S.Keys}}<tr><td><code>{{.KeyID}}</code></td><td class="num">{{.Objects}}</td><td>{{.KeyType}}</td><td>{{if .KeyType}}{{yesnoPtr .HSM}}{{end}}</td><td>{{if .KeyType}}{{yesnoPtr .Exportable}}{{end}}</td><td>{{with .Vault}}{{.Primary}}{{if .Secondary}}, replicated to {{.Secondary}}{{end}}{{end}}</td></tr>
{{end}}</table>{{else}}<p>No keys were given: the objects were not checked against the keys they should be wrapped for.</p>{{end}}
<table>
<tr><th>Key id in the objects' headers</th><th>Objects</th></tr>
{{range .S.KeyIDs}}<tr><td><code>{{.KeyID}}</code></td><td class="num">{{.Objects}}</td></tr>
{{end}}{{if .S.OtherKeyIDs}}<tr><td>other key ids (past the first 10,000)</td><td class="num">{{.S.OtherKeyIDs}}</td></tr>{{end}}
</table>

<h2>Findings</h2>
<table>
<tr><th>Kind</th><th>Count</th></tr>
{{range kinds}}<tr><td class="kind {{.}}">{{.}}</td><td class="num">{{findingN $.S .}}</td></tr>
{{end}}</table>
{{if .N}}<table>
<tr><th>Kind</th><th>Blob</th><th>Format</th><th>Wrapped for</th><th>Detail</th></tr>
{{end}}{{end}}{{define "tail"}}{{if .N}}</table>{{else}}<p>No findings.</p>{{end}}
</body>
</html>
{{end}}`))

var reportFormats = []string{blobstore.FormatGeoseal, blobstore.FormatCSEv2, blobstore.FormatCSEv1, blobstore.FormatNotEncrypted}

// writeReport writes the page: the summary, then the n finding rows
// spooled in rows (rendered, escaped, by findingRow), copied as they are.
func writeReport(w io.Writer, s *auditSummary, n int64, rows io.Reader) error {
	data := struct {
		S *auditSummary
		N int64
	}{s, n}
	if err := reportPage.ExecuteTemplate(w, "head", data); err != nil {
		return err
	}
	if _, err := io.Copy(w, rows); err != nil {
		return err
	}
	return reportPage.ExecuteTemplate(w, "tail", data)
}

func yesno(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func yesnoPtr(b *bool) string {
	if b == nil {
		return ""
	}
	return yesno(*b)
}
