package demodata

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/onevault/readiness/internal/vault"
)

// Shape of the dataset.
const (
	// encountersPerPatient is the number of encounters (hub, link and clinical satellite
	// rows) made for each patient.
	encountersPerPatient = 3
	// settingsPerTenant is the number of rows of tenant_setting per tenant.
	settingsPerTenant = 40
	// loadWindow is how far back the load_dates of a first Generate reach.
	loadWindow = 30 * 24 * time.Hour
	// initialBytesPerPatient estimates the table bytes (heap, TOAST, indexes) of one patient
	// with its demographics and encounters; Generate corrects it as it measures.
	initialBytesPerPatient = 17500
)

// Sizes in characters of the random text columns. Clinical notes carry most of the bytes,
// a few KB each: that is what notes and scanned letters weigh, and the server writes fewer,
// larger rows faster than many small ones (per-row work, index entries and SHA-256 calls
// cost more than the bytes); most of them are stored in TOAST, as real notes are.
const (
	notesMinChars, notesMaxChars     = 1536, 6144
	payloadMinChars, payloadMaxChars = 200, 700
	settingMinChars, settingMaxChars = 64, 256
)

// How Generate splits its work.
const (
	// A batch holds between these many bytes of patients, and at most an eighth of a
	// tenant's share, so that stopping at the target leaves the tenants even.
	batchMinBytes, batchMaxBytes = 256 << 10, 16 << 20
	batchesPerWorker             = 16 // per worker over the whole target, for accuracy
	batchesPerTenant             = 8
	progressEvery                = 5 * time.Second
	// The default number of workers is the number of CPUs, within these bounds.
	defaultMinWorkers, defaultMaxWorkers = 2, 8
)

// ErrNoTenants is returned by Generate when Options.Tenants is empty or holds a blank key.
var ErrNoTenants = errors.New("demodata: no tenants")

// batch is one unit of work: patients lo..hi-1 of one tenant, with their encounters, and
// the load_dates they get: from, and step microseconds more for each next patient.
type batch struct {
	tenant int
	lo, hi int64
	from   time.Time
	step   float64
}

// generator holds what every batch of one Generate call shares.
type generator struct {
	tenantsNorm []string // normalised business keys
	tenantKeys  [][]byte
	patientPfx  string // business key prefixes, unique per call
	encPfx      string
	start, end  time.Time // the window of load_dates
	stmts       batchSQL
}

// batchSQL are the statements of a batch. Their parameters are: $1 normalised tenant key,
// $2 tenant hash key, $3 first patient, $4 end patient (exclusive), $5 load_date of the
// first patient, $6 microseconds more per patient, $7 window end, $8 patient business key
// prefix, $9 encounter business key prefix (the patients statement has no $9). Hash keys follow hash_key: sha256 of the
// normalised parts joined with '||'.
//
// Each statement writes several tables through data-modifying CTEs over one materialised
// set of keys, so that every hash key is computed once: SHA-256 through OpenSSL is a good
// part of the server's work here.
type batchSQL struct {
	patients   string // hub_patient, sat_patient_profile and sat_patient_demographics; affects one row per patient
	encounters string // hub_encounter, link_patient_encounter and sat_encounter_clinical; one row per encounter
}

// Names that demographics draw from.
const (
	firstNames = `ARRAY['James','Mary','Robert','Patricia','John','Jennifer','Michael','Linda','David','Elizabeth',` +
		`'William','Barbara','Richard','Susan','Joseph','Jessica','Thomas','Sarah','Charles','Karen','Amara','Chen',` +
		`'Fatima','Hiroshi','Ingrid','Jamal','Kofi','Lucia','Mateo','Nadia','Olga','Pavel','Priya','Quentin','Rosa',` +
		`'Sven','Tariq','Uma','Viktor','Yara']`
	lastNames = `ARRAY['Smith','Johnson','Williams','Brown','Jones','Garcia','Miller','Davis','Rodriguez','Martinez',` +
		`'Hernandez','Lopez','Gonzalez','Wilson','Anderson','Thomas','Taylor','Moore','Jackson','Martin','Lee','Perez',` +
		`'Thompson','White','Harris','Sanchez','Clark','Ramirez','Lewis','Robinson','Okafor','Nguyen','Kowalski',` +
		`'Schmidt','Rossi','Yamamoto','Haddad','Novak','Silva','Andersen']`
	streets = `ARRAY['Main St','Oak Ave','Pine Rd','Maple Dr','Cedar Ln','Elm St','Washington Blvd','Lake View',` +
		`'Hill Rd','River Rd','Park Ave','Sunset Blvd','Church St','Mill Ln','High St','Station Rd']`
	cities = `ARRAY['Springfield','Riverside','Franklin','Greenville','Bristol','Clinton','Fairview','Salem',` +
		`'Madison','Georgetown','Arlington','Ashland','Dover','Oxford','Jackson','Burlington']`
)

// addressSQL is an SQL expression of a random street address.
var addressSQL = "(1 + floor(random() * 9999))::int || ' ' || " + pick(streets, 16) + " || ', ' || " + pick(cities, 16) +
	" || ' ' || lpad(floor(random() * 100000)::int::text, 5, '0')"

// pick is an SQL expression choosing a random element of an SQL array literal of n elements.
func pick(array string, n int) string {
	return fmt.Sprintf("(%s)[1 + floor(random() * %d)::int]", array, n)
}

// loadDateSQL is the load_date of patient number expr of the batch, clamped to the
// window's end.
func loadDateSQL(expr string) string {
	return fmt.Sprintf("least($5::timestamptz + ($6::float8 * ((%s) - $3::bigint)) * interval '1 microsecond', $7::timestamptz)", expr)
}

// newBatchSQL builds the statements of a batch for the payload source.
func newBatchSQL(p payloadSource) batchSQL {
	encounterLoadDate := loadDateSQL(fmt.Sprintf("j::float8 / %d", encountersPerPatient))
	// Volatile expressions sit in a subquery in FROM, which PostgreSQL does not flatten,
	// so each is computed once per row even where the outer query uses it twice.
	return batchSQL{
		patients: `
WITH p AS MATERIALIZED (
    SELECT sha256(convert_to($1::text || '||' || bk, 'UTF8')) AS hk, bk, ld
    FROM (SELECT $8::text || lpad(i::text, 9, '0') AS bk, ` + loadDateSQL("i") + ` AS ld
          FROM generate_series($3::bigint, $4::bigint - 1) AS i) AS g
), hub AS (
    INSERT INTO healthcare.hub_patient (patient_hk, patient_bk, tenant_hk, load_date, record_source)
    SELECT hk, bk, $2::bytea, ld, '` + RecordSource + `' FROM p
), profile AS (
    -- visit_number comes from its default, the sequence that ref.care_site owns.
    INSERT INTO healthcare.sat_patient_profile (patient_hk, load_date, hash_diff, tenant_hk, status, mrn, weight_kg, display_name, record_source)
    SELECT hk, ld, sha256(convert_to(concat_ws('|', status, mrn, weight_kg, display_name), 'UTF8')),
           $2::bytea, status, mrn, weight_kg, display_name, '` + RecordSource + `'
    FROM (
        SELECT hk, ld,
               ('{ACTIVE,ACTIVE,ACTIVE,INACTIVE,TRANSFERRED,DECEASED}'::ref.patient_status[])[1 + floor(random() * 6)::int] AS status,
               ('MRN-' || upper(substr(encode(hk, 'hex'), 1, 12)))::ref.mrn AS mrn,
               round((3 + random() * 147)::numeric, 1) AS weight_kg,
               ` + pick(firstNames, 40) + ` || ' ' || ` + pick(lastNames, 40) + ` AS display_name
        FROM p
    ) AS s
)
INSERT INTO healthcare.sat_patient_demographics
    (patient_hk, load_date, hash_diff, tenant_hk, first_name, last_name, birth_date, address, payload, record_source)
SELECT hk, ld, sha256(convert_to(concat_ws('|', first_name, last_name, birth_date, address, payload), 'UTF8')),
       $2::bytea, first_name, last_name, birth_date, address, payload, '` + RecordSource + `'
FROM (
    SELECT hk, ld,
           ` + pick(firstNames, 40) + ` AS first_name,
           ` + pick(lastNames, 40) + ` AS last_name,
           date '1930-01-01' + floor(random() * 32000)::int AS birth_date,
           ` + addressSQL + ` AS address,
           ` + p.text(payloadMinChars, payloadMaxChars) + ` AS payload
    FROM p
) AS s`,

		encounters: `
WITH e AS MATERIALIZED (
    SELECT sha256(convert_to($1::text || '||' || ebk, 'UTF8')) AS hk, ebk, pbk, ld
    FROM (SELECT $9::text || lpad(j::text, 10, '0') AS ebk,
                 $8::text || lpad((j / ` + strconv.Itoa(encountersPerPatient) + `)::text, 9, '0') AS pbk,
                 ` + encounterLoadDate + ` AS ld
          FROM generate_series($3::bigint * ` + strconv.Itoa(encountersPerPatient) + `, $4::bigint * ` + strconv.Itoa(encountersPerPatient) + ` - 1) AS j) AS g
), hub AS (
    INSERT INTO healthcare.hub_encounter (encounter_hk, encounter_bk, tenant_hk, load_date, record_source)
    SELECT hk, ebk, $2::bytea, ld, '` + RecordSource + `' FROM e
), link AS (
    INSERT INTO healthcare.link_patient_encounter (link_hk, patient_hk, encounter_hk, tenant_hk, load_date, record_source)
    SELECT sha256(convert_to($1::text || '||' || pbk || '||' || ebk, 'UTF8')),
           sha256(convert_to($1::text || '||' || pbk, 'UTF8')), hk, $2::bytea, ld, '` + RecordSource + `'
    FROM e
)
INSERT INTO healthcare.sat_encounter_clinical (encounter_hk, load_date, hash_diff, tenant_hk, diagnosis_code, notes, record_source)
SELECT hk, ld, sha256(convert_to(diagnosis_code || '|' || notes, 'UTF8')), $2::bytea, diagnosis_code, notes, '` + RecordSource + `'
FROM (
    SELECT hk, ld, ` + diagnosisCodeSQL("c") + ` AS diagnosis_code, ` + p.text(notesMinChars, notesMaxChars) + ` AS notes
    FROM (SELECT hk, ld, floor(random() * ` + strconv.Itoa(diagnosisCodes) + `)::int AS c FROM e) AS r
) AS s`,
	}
}

// Generate adds about opts.Size bytes of rows to the dataset, spread evenly across
// opts.Tenants, creating the schema first when it is missing. It is additive: on a dataset
// that has rows already, it adds new patients and encounters whose load_dates are newer
// than every existing one, so incremental backups by load_date see exactly the new rows.
// On an empty dataset the load_dates spread over the past 30 days.
//
// Batches of patients run as server-side INSERT ... SELECT statements on opts.Workers
// parallel connections. Generate measures the tables as it goes and stops when they have
// grown by opts.Size; at the end it vacuums and analyses the tables, so that the pages are
// stable (all-visible, hinted) before anyone backs them up, and autovacuum does not rewrite
// them between a full and an incremental backup.
func Generate(ctx context.Context, connString string, opts Options) (Stats, error) {
	began := time.Now()
	stats := Stats{Tables: len(Tables())}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Size <= 0 {
		return stats, fmt.Errorf("demodata: size must be positive, got %d", opts.Size)
	}
	g := &generator{}
	seen := map[string]bool{}
	for _, t := range opts.Tenants {
		n := vault.NormalizeKey(t)
		if n == "" {
			return stats, fmt.Errorf("%w: blank tenant key", ErrNoTenants)
		}
		if seen[n] {
			return stats, fmt.Errorf("demodata: tenant %q given twice", t)
		}
		seen[n] = true
		g.tenantsNorm = append(g.tenantsNorm, n)
		g.tenantKeys = append(g.tenantKeys, vault.HashKey(t))
	}
	if len(g.tenantsNorm) == 0 {
		return stats, ErrNoTenants
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = min(max(runtime.NumCPU(), defaultMinWorkers), defaultMaxWorkers)
	}

	pool, err := openPool(ctx, connString, workers+1)
	if err != nil {
		return stats, err
	}
	defer pool.Close()
	if err := pool.AcquireFunc(ctx, func(c *pgxpool.Conn) error { return ensure(ctx, c.Conn()) }); err != nil {
		return stats, err
	}
	src, err := detectPayloadSource(ctx, pool)
	if err != nil {
		return stats, fmt.Errorf("demodata: detect pgcrypto: %w", err)
	}
	if src.pgcrypto == "" {
		log.Warn("demodata: pgcrypto is not available; payloads are SHA-512 digests of random(), which is slower")
	}
	g.stmts = newBatchSQL(src)
	before, err := datasetSize(ctx, pool)
	if err != nil {
		return stats, fmt.Errorf("demodata: measure tables: %w", err)
	}

	// The window of load_dates: the past 30 days on an empty dataset, else from just after
	// the newest load_date to now. The server's clock decides, as it decides now() for rows
	// that the platform writes.
	newest, err := maxLoadDate(ctx, pool)
	if err != nil {
		return stats, fmt.Errorf("demodata: %w", err)
	}
	var now time.Time
	if err := pool.QueryRow(ctx, "SELECT now()").Scan(&now); err != nil {
		return stats, fmt.Errorf("demodata: %w", err)
	}
	g.start, g.end = now.Add(-loadWindow), now
	if !newest.IsZero() && !newest.Before(g.start) {
		g.start = newest.Add(time.Microsecond)
	}
	if g.end.Before(g.start.Add(time.Millisecond)) {
		// The newest row is from the last millisecond (or the clock went back): squeeze
		// this call's rows in just after it, rather than far into the future.
		g.end = g.start.Add(time.Millisecond)
	}
	tag := make([]byte, 3)
	_, _ = rand.Read(tag) // crypto/rand.Read never fails
	run := strings.ToUpper(strconv.FormatInt(now.UnixMicro(), 36) + hex.EncodeToString(tag))
	g.patientPfx, g.encPfx = "P-"+run+"-", "E-"+run+"-"

	// Batches are sized so that each worker runs many of them: the last ones decide how
	// close to the target the dataset ends.
	batchBytes := min(max(opts.Size/int64(workers*batchesPerWorker), batchMinBytes), batchMaxBytes,
		opts.Size/int64(len(g.tenantsNorm)*batchesPerTenant))
	perBatch := max(batchBytes/initialBytesPerPatient, 1)

	n, err := g.insertSettings(ctx, pool, src)
	if err != nil {
		return stats, err
	}
	stats.Rows += n

	log.Info("demodata: generating", "size", formatBytes(opts.Size), "tenants", len(g.tenantsNorm),
		"connections", workers, "patients_per_batch", perBatch)
	rows, err := g.run(ctx, pool, workers, perBatch, opts.Size, before, log)
	stats.Rows += rows
	if err == nil {
		log.Info("demodata: inserted; vacuuming", "rows", stats.Rows, "took", time.Since(began).Round(time.Millisecond).String())
		err = vacuum(ctx, pool)
	}
	after, sizeErr := datasetSize(context.WithoutCancel(ctx), pool)
	if sizeErr == nil {
		stats.Bytes = after - before
	}
	stats.Duration = time.Since(began)
	if err != nil {
		return stats, err
	}
	if sizeErr != nil {
		return stats, fmt.Errorf("demodata: measure tables: %w", sizeErr)
	}
	log.Info("demodata: added", "size", formatBytes(stats.Bytes), "rows", stats.Rows,
		"took", stats.Duration.Round(time.Millisecond).String(), "mb_per_s", fmt.Sprintf("%.1f", float64(stats.Bytes)/1e6/stats.Duration.Seconds()))
	return stats, nil
}

// insertSettings gives every tenant its settings rows, when it has none yet.
func (g *generator) insertSettings(ctx context.Context, pool *pgxpool.Pool, src payloadSource) (int64, error) {
	tag, err := pool.Exec(ctx, fmt.Sprintf(`
INSERT INTO healthcare.tenant_setting (tenant_hk, setting_key, setting_value, updated_at)
SELECT t.hk, 'setting.' || lpad(i::text, 3, '0'), %s, now()
FROM unnest($1::bytea[]) AS t(hk), generate_series(1, %d) AS i
ON CONFLICT (tenant_hk, setting_key) DO NOTHING`, src.text(settingMinChars, settingMaxChars), settingsPerTenant), g.tenantKeys)
	if err != nil {
		return 0, fmt.Errorf("demodata: insert tenant settings: %w", err)
	}
	return tag.RowsAffected(), nil
}

// run hands batches to workers, round-robin over the tenants, until the tables have grown
// by target bytes; it returns the rows inserted.
func (g *generator) run(ctx context.Context, pool *pgxpool.Pool, workers int, perBatch, target, before int64, log *slog.Logger) (int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		rows int64
		err  error
	}
	jobs := make(chan batch)
	results := make(chan result)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for b := range jobs {
				n, err := g.insert(ctx, pool, b)
				results <- result{n, err}
			}
		})
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()

	var (
		rows         int64
		firstErr     error
		inflight     int
		turn         int
		next         = make([]int64, len(g.tenantsNorm))     // next patient number
		nextLoad     = make([]time.Time, len(g.tenantsNorm)) // its load_date
		patientsDone int64
		grown        int64
		perPatient   = float64(initialBytesPerPatient)
		began        = time.Now()
		lastLog      = began
	)
	for i := range nextLoad {
		nextLoad[i] = g.start
	}
	perTenant := float64(target) / float64(len(next))
	for {
		// Batches still running have written part of their rows already, about half on
		// average, which the measurement counts.
		for firstErr == nil && inflight < workers &&
			float64(grown)+float64(inflight)*float64(perBatch)*perPatient/2 < float64(target) {
			// The tenant's remaining patients, as now estimated, share the rest of the
			// window, so the load_dates reach its end whatever the estimate was at first.
			remaining := max(perTenant/perPatient-float64(next[turn]), float64(perBatch))
			step := float64(g.end.Sub(nextLoad[turn]).Microseconds()) / remaining
			b := batch{tenant: turn, lo: next[turn], hi: next[turn] + perBatch, from: nextLoad[turn], step: step}
			next[turn] = b.hi
			nextLoad[turn] = nextLoad[turn].Add(time.Duration(step*float64(perBatch)) * time.Microsecond)
			turn = (turn + 1) % len(next)
			jobs <- b
			inflight++
		}
		if inflight == 0 {
			break
		}
		r := <-results
		inflight--
		if r.err != nil {
			if firstErr == nil {
				firstErr = r.err
				cancel()
			}
			continue
		}
		rows += r.rows
		patientsDone += perBatch
		if firstErr != nil {
			continue
		}
		size, err := datasetSize(ctx, pool)
		if err != nil {
			firstErr = fmt.Errorf("demodata: measure tables: %w", err)
			cancel()
			continue
		}
		grown = size - before
		if grown > 0 {
			perPatient = float64(grown) / (float64(patientsDone) + float64(inflight*int(perBatch))/2)
		}
		if time.Since(lastLog) >= progressEvery {
			lastLog = time.Now()
			log.Info("demodata: progress", "done", formatBytes(grown), "of", formatBytes(target),
				"mb_per_s", fmt.Sprintf("%.1f", float64(grown)/1e6/time.Since(began).Seconds()))
		}
	}
	return rows, firstErr
}

// insert writes one batch in one transaction: the patients, their profiles and
// demographics, their encounters, the links between them and the clinical satellites. Each
// statement's data-modifying CTEs insert as many rows as its final INSERT does.
func (g *generator) insert(ctx context.Context, pool *pgxpool.Pool, b batch) (int64, error) {
	var rows int64
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		args := []any{g.tenantsNorm[b.tenant], g.tenantKeys[b.tenant], b.lo, b.hi, b.from, b.step, g.end, g.patientPfx, g.encPfx}
		for _, s := range []struct {
			sql    string
			args   []any
			tables int64
		}{{g.stmts.patients, args[:8], 3}, {g.stmts.encounters, args, 3}} {
			tag, err := tx.Exec(ctx, s.sql, s.args...)
			if err != nil {
				return err
			}
			rows += s.tables * tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("demodata: insert batch of tenant %s: %w", g.tenantsNorm[b.tenant], err)
	}
	return rows, nil
}

// vacuum vacuums and analyses the insert-only tables in parallel, one connection each.
func vacuum(ctx context.Context, pool *pgxpool.Pool) error {
	var wg sync.WaitGroup
	errs := make([]error, len(loadDateTables))
	for i, t := range loadDateTables {
		wg.Go(func() {
			if _, err := pool.Exec(ctx, "VACUUM (ANALYZE) "+t); err != nil {
				errs[i] = fmt.Errorf("demodata: vacuum %s: %w", t, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// formatBytes writes n in MB (10^6 bytes) with one decimal.
func formatBytes(n int64) string {
	return fmt.Sprintf("%.1f MB", float64(n)/1e6)
}
