package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/onevault/readiness/gen/db"
	"github.com/onevault/readiness/internal/storage"
	"github.com/onevault/readiness/internal/vault"
)

// finalWriteTimeout bounds the writing of a verification's result once the job's context may
// have ended.
const finalWriteTimeout = 30 * time.Second

// VerifyArgs is the job that verifies one backup.
type VerifyArgs struct {
	BackupID uuid.UUID `json:"backupId"`
	Tenant   string    `json:"tenant"`
}

// Kind names the job.
func (VerifyArgs) Kind() string { return "backup.verify" }

// VerifyWorker works VerifyArgs jobs.
type VerifyWorker struct {
	river.WorkerDefaults[VerifyArgs]
	svc *Service
}

// Work verifies the backup.
func (w *VerifyWorker) Work(ctx context.Context, job *river.Job[VerifyArgs]) error {
	return w.svc.verify(ctx, job.Args)
}

// verify re-reads every object of a backup: each must decrypt, decompress and match the
// SHA-256 in the manifest; the COPY data of a logical backup must hold the rows the manifest
// counts. The result and its findings, naming each failed object, become the backup's
// verification; the backup becomes VERIFIED or VERIFY_FAILED.
func (s *Service) verify(ctx context.Context, args VerifyArgs) error {
	tenantHK, err := s.store.TenantHK(ctx, args.Tenant)
	if err != nil {
		return err
	}
	cur, err := s.Get(ctx, tenantHK, args.BackupID)
	if errors.Is(err, vault.ErrNotFound) {
		return river.JobCancel(err)
	}
	if err != nil {
		return err
	}
	switch cur.Status {
	case StatusCompleted, StatusVerified, StatusVerifyFailed:
	default:
		return river.JobCancel(fmt.Errorf("backup is %s", cur.Status))
	}
	// The job's ctx ends on a job timeout or a shutdown; record writes on one that does not, so
	// that the verification's last row is written exactly then.
	record := func(status string, checked int, bytes int64, findings []Finding) error {
		f, _ := json.Marshal(findings)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
		defer cancel()
		return s.store.InTenant(ctx, tenantHK, func(q *db.Queries) error {
			return q.BackupVerificationInsert(ctx, db.BackupVerificationInsertParams{BackupBk: args.BackupID,
				TenantHk: tenantHK, Status: status, ObjectsChecked: int32(checked), BytesChecked: bytes,
				Findings: f, RecordSource: vault.RecordSource})
		})
	}
	if err := record("RUNNING", 0, 0, []Finding{}); err != nil {
		return err
	}
	findings := []Finding{}
	var checked int
	var bytes int64
	rd, err := s.repo.OpenBackup(deref(cur.Location), args.BackupID.String())
	var m Manifest
	if err == nil {
		err = rd.Manifest(&m)
	}
	if err != nil {
		findings = append(findings, Finding{Object: "manifest.json", Message: err.Error()})
	} else {
		rows := expectedRows(&m)
		for _, o := range m.Objects {
			if err := ctx.Err(); err != nil {
				// The objects not read are not known bad: the backup keeps its status, and the
				// verification ends FAILED saying why, rather than RUNNING forever. The error
				// makes river try the job again.
				findings = append(findings, Finding{Object: "verification", Message: fmt.Sprintf(
					"interrupted after %d of %d objects (a job timeout or a shutdown): %v", checked, len(m.Objects), err)})
				if rerr := record("FAILED", checked, bytes, findings); rerr != nil {
					return errors.Join(err, rerr)
				}
				return err
			}
			checked++
			bytes += o.StoredSize
			if err := rd.Verify(o); err != nil {
				findings = append(findings, Finding{Object: o.Name, Message: err.Error()})
				continue
			}
			if want, ok := rows[o.Name]; ok {
				got, err := countCopyRows(rd, o.File)
				if err != nil {
					findings = append(findings, Finding{Object: o.Name, Message: err.Error()})
				} else if got != want {
					findings = append(findings, Finding{Object: o.Name,
						Message: fmt.Sprintf("holds %d rows, the manifest says %d", got, want)})
				}
			}
		}
	}
	// Every object was read: the result stands even when the job was cancelled while the last
	// one was read, and is recorded on a context that cannot be cancelled any more.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalWriteTimeout)
	defer cancel()
	status, verdict := "PASSED", StatusVerified
	if len(findings) > 0 {
		status, verdict = "FAILED", StatusVerifyFailed
	}
	if err := record(status, checked, bytes, findings); err != nil {
		return err
	}
	row := statusRow{status: verdict, attempt: int(cur.Attempt), phase: "verified", location: deref(cur.Location),
		startedAt: cur.StartedAt, completedAt: cur.CompletedAt, expiresAt: cur.ExpiresAt, sizeBytes: cur.SizeBytes,
		storedBytes: cur.StoredSizeBytes, startLSN: cur.StartLsn, endLSN: cur.EndLsn, rowCount: cur.RowCount}
	if cur.DurationMs != nil {
		row.durationMs = *cur.DurationMs
	}
	s.cfg.Logger.Info("backup verified", "backup_id", args.BackupID.String(), "result", status,
		"objects", checked, "findings", len(findings))
	return s.setStatus(ctx, tenantHK, args.BackupID, row)
}

// expectedRows maps the COPY objects of a TENANT backup to the rows the manifest counts.
func expectedRows(m *Manifest) map[string]int64 {
	rows := map[string]int64{}
	if m.TenantData != nil {
		for _, t := range m.TenantData.Tables {
			rows[t.Object] = t.Rows
		}
	}
	return rows
}

// countCopyRows counts the rows of a COPY text-format object: one line per row (newlines in
// values are escaped as \n in this format).
func countCopyRows(rd *storage.Reader, file string) (int64, error) {
	r, err := rd.Open(file)
	if err != nil {
		return 0, err
	}
	defer r.Close()
	br := bufio.NewReaderSize(r, 1<<16)
	var n int64
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			n++
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}
