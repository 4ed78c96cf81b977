package backup

import (
	"context"

	"github.com/google/uuid"
)

// VerifyJob does the work of a verification job on ctx, for the tests that cancel a job midway
// as river does on a job timeout or a shutdown.
func (s *Service) VerifyJob(ctx context.Context, tenant string, id uuid.UUID) error {
	return s.verify(ctx, VerifyArgs{BackupID: id, Tenant: tenant})
}
