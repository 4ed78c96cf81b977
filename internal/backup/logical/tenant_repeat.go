package logical

import (
	"context"
	"fmt"
	"math/bits"
	"strings"

	"github.com/jackc/pgx/v5"
)

// repeatTable is the temporary table through which loadSkippingRepeats loads an object.
const repeatTable = "readiness_restore_repeat"

// subtract removes the rows of o, which s holds.
func (s *rowSum) subtract(o rowSum) {
	var borrow uint64
	s.lo, borrow = bits.Sub64(s.lo, o.lo, 0)
	s.hi, _ = bits.Sub64(s.hi, o.hi, borrow)
	s.rows -= o.rows
}

// loadSkippingRepeats appends the rows of an incremental entry marked MayRepeat, leaving out
// those that the table already holds exactly: the frozen rows older than 2^32 transactions
// that the backup could not tell from new ones (see the package documentation). The object
// is loaded into a temporary table, checked against its manifest entry as it streams in,
// and the rows left out are taken off the checksum that the table must end with. rt.want
// already holds the entry's rows.
func loadSkippingRepeats(ctx context.Context, tx pgx.Tx, src Source, e TenantTable, rt *restoredTable, sum rowSum) error {
	table := quoteQualified(e.Schema, e.Name)
	only := "ONLY "
	if rt.partitioned {
		only = ""
	}
	cols := quoteColumns(e.Columns)
	if _, err := tx.Exec(ctx, fmt.Sprintf("CREATE TEMPORARY TABLE %s ON COMMIT DROP AS SELECT %s FROM %s%s WITH NO DATA",
		repeatTable, cols, only, table)); err != nil {
		return fmt.Errorf("logical: staging %s.%s: %w", e.Schema, e.Name, err)
	}
	r, err := src.Open(e.Object)
	if err != nil {
		return fmt.Errorf("logical: opening object %s: %w", e.Object, err)
	}
	defer r.Close()
	vr := newVerifyingReader(r, e.Object, sum)
	tag, err := tx.Conn().PgConn().CopyFrom(ctx, vr, fmt.Sprintf("COPY %s (%s) FROM STDIN", repeatTable, cols))
	if vr.err != nil {
		return vr.err
	}
	if err != nil {
		return fmt.Errorf("logical: loading %s.%s from %s: %w", e.Schema, e.Name, e.Object, err)
	}
	if tag.RowsAffected() != e.Rows {
		return fmt.Errorf("%w: %s.%s: loaded %d rows from %s, the manifest records %d",
			ErrVerifyFailed, e.Schema, e.Name, tag.RowsAffected(), e.Object, e.Rows)
	}

	// Rows are compared by their text, which every type has (not every type has equality).
	held := fmt.Sprintf("EXISTS (SELECT FROM %s%s t WHERE %s = %s)", only, table, rowText("t", e.Columns), rowText("s", e.Columns))
	repeated, err := copyChecksum(ctx, tx.Conn().PgConn(),
		fmt.Sprintf("COPY (SELECT %s FROM %s s WHERE %s) TO STDOUT", prefixed("s", e.Columns), repeatTable, held))
	if err != nil {
		return fmt.Errorf("logical: comparing %s.%s with %s: %w", e.Schema, e.Name, e.Object, err)
	}
	tag, err = tx.Exec(ctx, fmt.Sprintf("INSERT INTO %s (%s) SELECT %s FROM %s s WHERE NOT %s",
		table, cols, prefixed("s", e.Columns), repeatTable, held))
	if err != nil {
		return fmt.Errorf("logical: loading %s.%s from %s: %w", e.Schema, e.Name, e.Object, err)
	}
	if tag.RowsAffected() != e.Rows-repeated.rows {
		return fmt.Errorf("%w: %s.%s: appended %d rows from %s, expected %d", ErrVerifyFailed, e.Schema, e.Name,
			tag.RowsAffected(), e.Object, e.Rows-repeated.rows)
	}
	rt.want.subtract(repeated)
	if _, err := tx.Exec(ctx, "DROP TABLE "+repeatTable); err != nil {
		return fmt.Errorf("logical: dropping the staging table: %w", err)
	}
	return nil
}

// prefixed returns the columns quoted and qualified by alias, comma separated.
func prefixed(alias string, cols []string) string {
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = alias + "." + pgx.Identifier{c}.Sanitize()
	}
	return strings.Join(out, ", ")
}

// rowText is the text of the row of the columns, qualified by alias.
func rowText(alias string, cols []string) string {
	return "ROW(" + prefixed(alias, cols) + ")::text"
}
