// Package leader elects, among the replicas of the service, the one that does a leader-only
// duty: firing schedules, collecting samples of the managed cluster, evaluating alert rules,
// reading PostgreSQL's log. The election is a PostgreSQL session advisory lock named after the
// duty: the replica whose connection holds the lock leads; when its process dies the lock goes
// with the connection, and another replica takes over at its next check. Nothing else is
// needed: no lease to renew, no clock to trust.
package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/onevault/readiness/gen/db"
)

// ErrNotLeader is returned by IsLeader when another replica holds the duty's lock.
var ErrNotLeader = errors.New("another replica leads")

// Elector holds (or tries to take) the lock of one duty on its own connection. Its IsLeader
// method is gocron's Elector interface, and the collector and evaluators call it before each
// cycle. It is safe for concurrent use.
type Elector struct {
	config *pgx.ConnConfig
	duty   string

	mu   sync.Mutex
	conn *pgx.Conn
}

// New returns an elector for duty (a name such as "readiness:scheduler") on the database
// that config connects to. It connects at the first IsLeader.
func New(config *pgx.ConnConfig, duty string) *Elector {
	return &Elector{config: config.Copy(), duty: duty}
}

// IsLeader answers nil when this replica holds (or has just taken) the duty's lock, and an
// error wrapping ErrNotLeader when another replica holds it. Any other error (the database
// cannot be reached) also means "do not lead now".
func (e *Elector) IsLeader(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil && !e.conn.IsClosed() {
		if err := e.conn.Ping(ctx); err == nil {
			return nil // the lock is held for the life of this connection
		}
		_ = e.conn.Close(ctx)
		e.conn = nil
	}
	conn, err := pgx.ConnectConfig(ctx, e.config)
	if err != nil {
		return fmt.Errorf("%s election: %w", e.duty, err)
	}
	ok, err := db.New(conn).LeaderTry(ctx, e.duty)
	if err != nil || !ok {
		_ = conn.Close(ctx)
		if err == nil {
			err = fmt.Errorf("%s: %w", e.duty, ErrNotLeader)
		}
		return err
	}
	e.conn = conn
	return nil
}

// Close gives up the lead: the lock's connection is closed, and another replica can take the
// duty at its next check.
func (e *Elector) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn != nil {
		_ = e.conn.Close(context.Background())
		e.conn = nil
	}
}
