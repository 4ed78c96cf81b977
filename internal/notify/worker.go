package notify

import (
	"context"
	"errors"
	"log/slog"

	"github.com/riverqueue/river"
)

// EmailMaxAttempts is how often an e-mail job is tried by default. With river's default
// backoff (attempt^4 seconds: 1s, 16s, 81s, 256s) five attempts span about six minutes plus
// the time the attempts themselves take, which rides out a mail server's restart; an inserter
// that wants a longer window sets MaxAttempts itself.
const EmailMaxAttempts = 5

// EmailArgs is a river job that sends one e-mail. Insert it in the transaction that records
// what the e-mail is about; the backup or alert never waits for, or fails with, the mail.
type EmailArgs struct {
	Message Message `json:"message"`
	// Category says what the e-mail is about, such as "schedule.backup", for logs.
	Category string `json:"category"`
}

// Kind names the job.
func (EmailArgs) Kind() string { return "notify.email" }

// InsertOpts makes EmailMaxAttempts the default; options given at insert time win.
func (EmailArgs) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: EmailMaxAttempts}
}

// EmailWorker works EmailArgs jobs with a Mailer.
type EmailWorker struct {
	river.WorkerDefaults[EmailArgs]
	Mailer *Mailer
	Logger *slog.Logger
}

var _ river.Worker[EmailArgs] = (*EmailWorker)(nil)

// Work sends the e-mail. A failed send is logged with its attempt and returned, so river
// retries it with backoff until the job's attempts run out; a message that can never be sent
// (ErrInvalidMessage) is cancelled instead. With e-mail disabled the job is logged and
// completes: there is nothing to retry until SMTP is configured.
func (w *EmailWorker) Work(ctx context.Context, job *river.Job[EmailArgs]) error {
	logger := w.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger = logger.With("job_id", job.ID, "category", job.Args.Category,
		"attempt", job.Attempt, "max_attempts", job.MaxAttempts, "recipients", len(job.Args.Message.To))

	if !w.Mailer.Enabled() {
		logger.WarnContext(ctx, "e-mail notification not sent: e-mail is disabled (SMTP_HOST is not set)")
		return nil
	}
	id, err := w.Mailer.Send(ctx, job.Args.Message)
	if err != nil {
		if errors.Is(err, ErrInvalidMessage) {
			logger.ErrorContext(ctx, "e-mail notification cannot be sent; not retrying", "error", err.Error())
			return river.JobCancel(err)
		}
		logger.ErrorContext(ctx, "e-mail notification failed", "error", err.Error(),
			"retrying", job.Attempt < job.MaxAttempts)
		return err
	}
	logger.InfoContext(ctx, "e-mail notification sent", "id", id)
	return nil
}
