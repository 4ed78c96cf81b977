package pgstat

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// physicalSlotsQuery reads the physical replication slots and how far each trails the server's
// WAL: the current position on a primary, the received position on a standby.
const physicalSlotsQuery = `
SELECT slot_name::text, active, restart_lsn::text, wal_status,
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END - restart_lsn)::bigint
FROM pg_replication_slots WHERE slot_type = 'physical' ORDER BY slot_name`

// Slot is one physical replication slot, from pg_replication_slots.
type Slot struct {
	Name   string
	Active bool // a receiver streams through the slot now
	// RestartLSN is the oldest WAL the slot keeps on the server; "" when it keeps none yet.
	RestartLSN string
	// WALStatus is wal_status; "lost" means the server removed WAL the slot needed.
	WALStatus string
	// BehindBytes is how far RestartLSN trails the server's WAL position; nil when either is
	// unknown.
	BehindBytes *int64
}

// ReadPhysicalSlots reads the server's physical replication slots, ordered by name.
func ReadPhysicalSlots(ctx context.Context, q Querier) ([]Slot, error) {
	rows, err := q.Query(ctx, physicalSlotsQuery)
	if err != nil {
		return nil, fmt.Errorf("pgstat: reading pg_replication_slots: %w", err)
	}
	slots, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Slot, error) {
		var sl Slot
		var restart, walStatus *string
		err := row.Scan(&sl.Name, &sl.Active, &restart, &walStatus, &sl.BehindBytes)
		sl.RestartLSN, sl.WALStatus = deref(restart), deref(walStatus)
		return sl, err
	})
	if err != nil {
		return nil, fmt.Errorf("pgstat: reading pg_replication_slots: %w", err)
	}
	return slots, nil
}
