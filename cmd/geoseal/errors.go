package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/bloberror"
	"github.com/geoseal/geoseal/envelope"
	"github.com/geoseal/geoseal/envelope/blobstore"
	"github.com/geoseal/geoseal/keyring"
	"github.com/geoseal/geoseal/region"
)

// Exit codes, the same for every command. exitCode maps errors to them;
// nothing else decides an exit code.
const (
	exitOK      = 0
	exitFailure = 1 // a usage error, bad data, a failed request
	exitRefused = 3 // the region policy refused the account: nothing was sent
	// An interrupted command exits 128 + the signal's number, as a shell
	// reports a process the signal killed: 130 for Ctrl-C (SIGINT).
	exitSignalBase = 128
)

// A usageError is a mistake in the command line. Its report points to the
// command's help.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// shown wraps an error the command has already explained in its output
// (region check prints the refusal it decided): report prints nothing more,
// and the exit code is err's.
type shown struct{ err error }

func (e shown) Error() string { return e.err.Error() }
func (e shown) Unwrap() error { return e.err }

// interrupted is the cause of a command's context when a signal stopped it.
type interrupted struct{ sig os.Signal }

func (e *interrupted) Error() string { return "interrupted by " + e.sig.String() }

// timedOut is the cause of a command's context when --timeout ran out.
type timedOut struct{ after time.Duration }

func (e *timedOut) Error() string { return fmt.Sprintf("timed out after %s (--timeout)", e.after) }

// withTimeout bounds ctx by --timeout (0: no bound), with a cause that
// says so.
func withTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if d <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeoutCause(ctx, d, &timedOut{d})
}

// exitCode maps the error a command returned to its exit status. ctx is
// the command's context: an interrupted command exits 128 + signal however
// its error reads.
func exitCode(ctx context.Context, err error) int {
	var sig *interrupted
	var v *region.Violation
	switch {
	case err == nil:
		return exitOK
	case errors.As(context.Cause(ctx), &sig):
		if s, ok := sig.sig.(syscall.Signal); ok {
			return exitSignalBase + int(s)
		}
		return exitSignalBase + int(syscall.SIGINT)
	case errors.As(err, &v):
		return exitRefused
	}
	return exitFailure
}

// maxLine is the length of an error line without --verbose: it says what
// failed and what to do in less than a terminal's width and a half.
const maxLine = 199

// report prints a command's error on stderr and returns the exit code: one
// line, "geoseal CMD: what failed; what to do", shorter than 200
// characters, with SAS signatures redacted and untrusted text escaped; a
// usage error adds the line that points to the help, and --verbose the
// service's full error.
func report(ctx context.Context, env *environment, cmd string, err error) int {
	if err == nil {
		return exitOK
	}
	code := exitCode(ctx, err)
	if errors.As(err, new(shown)) {
		return code
	}
	line, detail := describe(ctx, err)
	line = oneLine(strings.TrimSpace("geoseal "+cmd) + ": " + redactSAS(line))
	if !env.common.verbose {
		line = shorten(line, maxLine)
	}
	fmt.Fprintln(env.stderr, line)
	var ue *usageError
	if errors.As(err, &ue) {
		if cmd == "help" {
			cmd = ""
		}
		fmt.Fprintf(env.stderr, "run '%s --help'\n", strings.TrimSpace("geoseal "+cmd))
	}
	if env.common.verbose && detail != "" {
		for _, l := range strings.Split(strings.TrimSpace(redactSAS(detail)), "\n") {
			fmt.Fprintf(env.stderr, "  %s\n", escapeNonPrinting(strings.TrimRight(l, "\r")))
		}
	}
	return code
}

// describe returns the one-line message for err and, for --verbose, the
// full detail of what the service or the policy said.
func describe(ctx context.Context, err error) (line, detail string) {
	var (
		ue  *usageError
		sig *interrupted
		to  *timedOut
		v   *region.Violation
		be  *blobError
		re  *azcore.ResponseError
		ne  *url.Error
		ce  *credentialError
	)
	if errors.As(err, &re) {
		detail = serviceDetail(re)
	}
	switch {
	case errors.As(err, &ue):
		return ue.msg, ""
	case errors.As(context.Cause(ctx), &sig):
		return "interrupted; stopped cleanly, nothing is left half written", ""
	case errors.As(context.Cause(ctx), &to):
		return to.Error(), err.Error()
	case errors.As(err, &v):
		return "nothing was sent: " + shortViolation(v.Decision), v.Error()
	case errors.As(err, &ce):
		return fmt.Sprintf("no Microsoft Entra ID token for %s from azidentity's default chain: sign in (az login) or set AZURE_CLIENT_ID and its secret, or give a key or SAS", ce.what), ce.err.Error()
	case errors.As(err, &be) && be.noOverwrite && errors.Is(err, blobstore.ErrBlobChanged):
		return fmt.Sprintf("blob %s already exists in container %s; --no-overwrite leaves it as it is", quoteUntrusted(be.blob), quoteUntrusted(be.container)), err.Error()
	case errors.As(err, &be) && re != nil:
		return be.describe(re), detail
	case re != nil:
		// Keep what the packages said the request was for ("--keyvault
		// URL: "), then the service's answer in a few words.
		prefix, _, _ := strings.Cut(err.Error(), re.Error())
		return fmt.Sprintf("%s%s answered %d %s", prefix, serviceHost(re), re.StatusCode, re.ErrorCode), detail
	case errors.As(err, &ne):
		return describeNetwork(ne), err.Error()
	}
	return explain(err).Error(), ""
}

// serviceDetail is what --verbose adds for an error of the service.
func serviceDetail(re *azcore.ResponseError) string {
	var b strings.Builder
	fmt.Fprintf(&b, "service: %d %s", re.StatusCode, re.ErrorCode)
	if re.RawResponse != nil {
		if id := re.RawResponse.Header.Get("x-ms-request-id"); id != "" {
			fmt.Fprintf(&b, ", request id %s", id)
		}
	}
	b.WriteString("\n")
	b.WriteString(re.Error())
	return b.String()
}

// serviceHost names the host that answered re.
func serviceHost(re *azcore.ResponseError) string {
	if re.RawResponse != nil && re.RawResponse.Request != nil {
		return re.RawResponse.Request.URL.Host
	}
	return "the service"
}

// describeNetwork says which host could not be reached and why, without
// the request's URL (which may carry a SAS).
func describeNetwork(ne *url.Error) string {
	host := "the service"
	if u, err := url.Parse(ne.URL); err == nil && u.Host != "" {
		host = u.Host
	}
	if errors.Is(ne, context.DeadlineExceeded) {
		return fmt.Sprintf("no answer from %s within the per-try timeout, on any try; check the endpoint, or raise --try-timeout", host)
	}
	return fmt.Sprintf("cannot reach %s: %s", host, networkReason(ne))
}

// networkReason is the innermost useful text of a transport error:
// "connection refused", not "dial tcp 127.0.0.1:1: connect: connection
// refused".
func networkReason(err error) string {
	var se *os.SyscallError
	var de *net.DNSError
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "no answer within the per-try timeout"
	case errors.As(err, &de):
		return "no such host " + quoteUntrusted(de.Name)
	case errors.As(err, &se):
		return se.Err.Error()
	case errors.As(err, &oe):
		return oe.Err.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// A blobError is a failed request about a container or a blob, with the
// names and credential that let its message say which and what to do.
type blobError struct {
	container, blob string
	// credential says where the credential came from ("a SAS in the URL").
	credential string
	// skipped lists credential sources that did not apply, and why.
	skipped []string
	// canCreate is set when the command can create a missing container;
	// noOverwrite when it was told not to replace a blob.
	canCreate, noOverwrite bool
	err                    error
}

func (e *blobError) Error() string { return e.err.Error() }
func (e *blobError) Unwrap() error { return e.err }

func (e *blobError) describe(re *azcore.ResponseError) string {
	c, b := quoteUntrusted(e.container), quoteUntrusted(e.blob)
	switch code := bloberror.Code(re.ErrorCode); {
	case code == bloberror.ContainerNotFound:
		if e.canCreate {
			return fmt.Sprintf("container %s does not exist; create it with --create-container", c)
		}
		return fmt.Sprintf("container %s does not exist", c)
	case code == bloberror.BlobNotFound || (re.StatusCode == http.StatusNotFound && e.blob != "" && code == ""):
		return fmt.Sprintf("blob %s not found in container %s", b, c)
	case code == bloberror.BlobAlreadyExists:
		return fmt.Sprintf("blob %s already exists in container %s; --no-overwrite leaves it as it is", b, c)
	case code == bloberror.ConditionNotMet:
		return fmt.Sprintf("blob %s in container %s changed while geoseal worked on it; nothing was written; run the command again", b, c)
	case code == bloberror.SnapshotsPresent:
		return fmt.Sprintf("blob %s in container %s has snapshots; delete them with it with --delete-snapshots", b, c)
	case code == bloberror.AuthenticationFailed:
		return fmt.Sprintf("the storage account refused the credential (%s%s): a wrong key, or a SAS that is malformed or expired", e.credential, e.skippedNote())
	case strings.HasPrefix(string(code), "Authorization") || code == bloberror.InsufficientAccountPermissions || re.StatusCode == http.StatusForbidden:
		return fmt.Sprintf("access denied (%s, %s%s): a wrong or expired SAS, one without the permission, or an identity without a Storage Blob Data role", e.credential, code, e.skippedNote())
	case code == bloberror.InvalidResourceName || code == bloberror.OutOfRangeInput:
		return fmt.Sprintf("the service refused the name (%s): a container name is 3-63 lowercase letters, digits and single hyphens; container %s, blob %s", code, c, b)
	}
	return fmt.Sprintf("the storage service answered %d %s for container %s", re.StatusCode, re.ErrorCode, c)
}

// skippedNote says which credential sources were passed over.
func (e *blobError) skippedNote() string {
	if len(e.skipped) == 0 {
		return ""
	}
	return "; " + strings.Join(e.skipped, "; ")
}

// shortViolation is a region refusal in a line: the first refused region,
// its country and the rule that refused it; --verbose prints the guard's
// full explanation.
func shortViolation(d *region.Decision) string {
	verdicts := []region.Verdict{d.Primary}
	if d.Secondary != nil {
		verdicts = append(verdicts, *d.Secondary)
	}
	verdicts = append(verdicts, d.Copies...)
	for _, v := range verdicts {
		if v.Allowed {
			continue
		}
		where := quoteUntrusted(v.Region)
		if v.CountryName != "" {
			where += " (" + v.CountryName
			if v.TreatedAs != "" {
				where += ", counted as " + v.TreatedAs
			}
			where += ")"
		}
		holder := ""
		if v.Holder != "" {
			holder = armResourceID.ReplaceAllString(v.Holder, `"$1"`) + ": "
		}
		if !v.Known {
			return fmt.Sprintf("policy %s refuses %s%s region %s: not in the region catalog%s", d.Policy, holder, v.Role, where, regionHint(region.DefaultCatalog(), v))
		}
		s := fmt.Sprintf("policy %s refuses %s%s region %s: %s", d.Policy, holder, v.Role, where, v.Rule)
		if v.Citation != "" {
			s += ", " + v.Citation
		}
		return s
	}
	return fmt.Sprintf("policy %s refuses the account: %s (%s)", d.Policy, d.Rule, d.Citation)
}

// armResourceID matches a quoted Azure resource id, whose last segment
// (the vault's or account's name) is enough for a line.
var armResourceID = regexp.MustCompile(`"/subscriptions/[^"]*/([^/"]+)"`)

// explain prefixes errors whose package text is terse for a person at a
// terminal with what they mean; the original error stays in the chain.
func explain(err error) error {
	var nm *keyring.NoMatchError
	switch {
	case errors.As(err, &nm):
		return fmt.Errorf("none of the keys given opens this object: %w", err)
	case errors.Is(err, envelope.ErrBodyTampered):
		return fmt.Errorf("the object was modified, truncated or extended: %w", err)
	case errors.Is(err, envelope.ErrHeaderTampered), errors.Is(err, envelope.ErrCommitment):
		return fmt.Errorf("the object's header was modified: %w", err)
	case errors.Is(err, envelope.ErrContextMismatch) && strings.Contains(err.Error(), "client-side encryption v2"):
		// blobstore refuses a CSE v2 blob under RequireContext with
		// ErrContextMismatch and no sentinel of its own; its text says why.
		return fmt.Errorf("the blob uses Azure client-side encryption v2, which has no encryption context: --require-context refuses it: %w", err)
	case errors.Is(err, envelope.ErrContextMismatch) && strings.Contains(err.Error(), "client-side encryption v1"):
		return fmt.Errorf("the blob uses Azure client-side encryption v1, which has no encryption context: --require-context refuses it: %w", err)
	case errors.Is(err, envelope.ErrContextMismatch):
		return fmt.Errorf("the object's encryption context lacks a --require-context pair: %w", err)
	case errors.Is(err, blobstore.ErrBlobChanged):
		return fmt.Errorf("another writer changed the blob while geoseal worked on it; nothing was written; run the command again: %w", err)
	case errors.Is(err, blobstore.ErrCSEv1NotEnabled):
		return fmt.Errorf("the blob uses Azure client-side encryption v1, which has no integrity protection: get reads it only with --format azure-cse-v1 and its key (--key-id with --key-file or --rsa-private, or --keyvault); geoseal migrate converts it: %w", err)
	case errors.Is(err, blobstore.ErrCSEv2NotConfigured):
		return fmt.Errorf("the blob uses Azure client-side encryption v2, which get reads only with --format azure-cse-v2 and its key (--key-id with --key-file or --rsa-private, or --keyvault): %w", err)
	case errors.Is(err, envelope.ErrNotGeoseal):
		return fmt.Errorf("not a geoseal object (for Azure CSE v2 blobs use --format azure-cse-v2): %w", err)
	}
	return err
}

// sasSignature matches the signature of a SAS in any text: a URL, an
// error, a connection string.
var sasSignature = regexp.MustCompile(`(?i)(\bsig=)[^&\s"'<>;]+`)

// redactSAS replaces every SAS signature in s: a SAS is a bearer
// credential, and error lines end up in logs and tickets.
func redactSAS(s string) string { return sasSignature.ReplaceAllString(s, "${1}REDACTED") }

// shorten cuts s to at most n characters, marking the cut.
func shorten(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	const mark = " [...] (--verbose)"
	r := []rune(s)
	return string(r[:n-len(mark)]) + mark
}
