package keyring

import (
	"context"
	"log/slog"
	"time"
)

// audit emits the audit record of one Wrap or Unwrap operation on logger,
// which may be nil (no audit). It records who did what with which key and
// how it went, never key material: callers pass identifiers only.
func audit(ctx context.Context, logger *slog.Logger, op, provider, keyID, algorithm string, start time.Time, err error) {
	if logger == nil {
		return
	}
	level, outcome := slog.LevelInfo, "ok"
	if err != nil {
		level, outcome = slog.LevelWarn, "error"
	}
	attrs := []slog.Attr{
		slog.String("op", op),
		slog.String("provider", provider),
		slog.String("key_id", keyID),
		slog.String("algorithm", algorithm),
		slog.String("outcome", outcome),
		slog.Duration("duration", time.Since(start)),
	}
	if err != nil {
		attrs = append(attrs, slog.String("error", err.Error()))
	}
	logger.LogAttrs(ctx, level, "geoseal keyring "+op, attrs...)
}
