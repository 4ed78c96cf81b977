package logical

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestSplitDump(t *testing.T) {
	const script = `--
-- PostgreSQL database dump
--

\restrict abcDEF123

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: public; Type: SCHEMA; Schema: -; Owner: -
--

-- *not* creating schema, since initdb creates it


--
-- Name: t_pkey; Type: CONSTRAINT; Schema: s; Owner: -
--

ALTER TABLE ONLY s.t
    ADD CONSTRAINT t_pkey PRIMARY KEY (id);


SET default_tablespace = '';

--
-- Name: t_fk; Type: FK CONSTRAINT; Schema: s; Owner: -
--

ALTER TABLE ONLY s.t
    ADD CONSTRAINT t_fk FOREIGN KEY (r) REFERENCES s.r(id);


--
-- PostgreSQL database dump complete
--

\unrestrict abcDEF123

`
	items, err := splitDump(strings.NewReader(script))
	require.NoError(t, err)
	require.Equal(t, []ddlItem{
		{session: true, sql: "SET statement_timeout = 0;"},
		{session: true, sql: "SELECT pg_catalog.set_config('search_path', '', false);"},
		{name: "Name: t_pkey; Type: CONSTRAINT; Schema: s; Owner: -", sql: "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT t_pkey PRIMARY KEY (id);"},
		{session: true, name: "Name: t_pkey; Type: CONSTRAINT; Schema: s; Owner: -", sql: "SET default_tablespace = '';"},
		{name: "Name: t_fk; Type: FK CONSTRAINT; Schema: s; Owner: -", sql: "ALTER TABLE ONLY s.t\n    ADD CONSTRAINT t_fk FOREIGN KEY (r) REFERENCES s.r(id);"},
	}, items, "the psql meta-commands and the comment-only entries are dropped; session settings stand apart")
}

func TestLibpqConnString(t *testing.T) {
	t.Run("a URL loses its password and the settings only pgx knows", func(t *testing.T) {
		dsn, password, err := libpqConnString("postgres://backup:s3cr%40t@db.example:5433/one_vault?sslmode=require&pool_max_conns=4&statement_cache_capacity=0")
		require.NoError(t, err)
		require.Equal(t, "s3cr@t", password)
		require.Equal(t, "postgres://backup@db.example:5433/one_vault?sslmode=require", dsn)
	})
	t.Run("a keyword/value string loses its password and keeps quoted values", func(t *testing.T) {
		dsn, password, err := libpqConnString(`host=db.example user=backup password='it\'s secret' dbname=one_vault application_name='a b'`)
		require.NoError(t, err)
		require.Equal(t, "it's secret", password)
		require.Equal(t, `host='db.example' user='backup' dbname='one_vault' application_name='a b'`, dsn)
	})
}

func TestMarkTracker(t *testing.T) {
	t.Run("the greatest timestamptz wins whatever its fraction", func(t *testing.T) {
		m := markTracker{field: 1, tz: true}
		for _, line := range []string{
			"a\t2025-01-02 03:04:05+00\tx",
			"b\t2025-01-02 03:04:05.5+00\tx",
			"c\t2025-01-02 03:04:05.45+00\tx",
			"d\t2024-12-31 23:59:59.999999+00",
		} {
			m.observe([]byte(line))
		}
		mark, err := m.mark()
		require.NoError(t, err)
		require.Equal(t, time.Date(2025, 1, 2, 3, 4, 5, 500_000_000, time.UTC), *mark)
	})
	t.Run("a timestamp without time zone is read as UTC", func(t *testing.T) {
		m := markTracker{field: 0}
		m.observe([]byte("2025-06-01 12:00:00.000001\tx"))
		mark, err := m.mark()
		require.NoError(t, err)
		require.Equal(t, time.Date(2025, 6, 1, 12, 0, 0, 1000, time.UTC), *mark)
	})
	for _, value := range []string{`\N`, "infinity", "-infinity", "0044-03-15 12:00:00+00 BC", "12025-01-01 00:00:00+00"} {
		t.Run("a value that cannot be ordered as text leaves no mark: "+value, func(t *testing.T) {
			m := markTracker{field: 0, tz: true}
			m.observe([]byte("2025-01-01 00:00:00+00"))
			m.observe([]byte(value))
			mark, err := m.mark()
			require.NoError(t, err)
			require.Nil(t, mark)
		})
	}
}

func TestRowSumIsOrderIndependentAndAdditive(t *testing.T) {
	var ab, ba, a, b rowSum
	ab.add([]byte("row a"))
	ab.add([]byte("row b"))
	ba.add([]byte("row b"))
	ba.add([]byte("row a"))
	a.add([]byte("row a"))
	b.add([]byte("row b"))
	a.merge(b)
	require.Equal(t, ab, ba)
	require.Equal(t, ab, a)
	back, err := parseRowSum(ab.String(), 2)
	require.NoError(t, err)
	require.Equal(t, ab, back)

	var dup rowSum
	dup.add([]byte("row a"))
	dup.add([]byte("row a"))
	require.NotEqual(t, rowSum{rows: 2}, dup, "a duplicated row does not cancel out")
}

func TestFilterTOC(t *testing.T) {
	const full = `;
; Archive created at 2026-12-04 21:01:09 UTC
;
9; 2615 16387 SCHEMA - ext postgres
7; 2615 16385 SCHEMA - vault_types postgres
2; 3079 16388 EXTENSION - citext 
3475; 0 0 COMMENT - EXTENSION citext 
897; 1247 16494 TYPE vault_types patient_status postgres
3476; 0 0 COMMENT vault_types TYPE patient_status postgres
898; 1247 16495 TYPE vault_types unrelated postgres
3477; 0 0 COMMENT vault_types TYPE unrelated postgres
219; 1259 16518 TABLE vault_types counter_owner postgres
220; 1259 16521 SEQUENCE vault_types visit_no_seq postgres
3478; 0 0 SEQUENCE OWNED BY vault_types visit_no_seq postgres
222; 1259 16526 TABLE healthcare sat_patient_profile postgres
3479; 0 0 COMMENT healthcare TABLE sat_patient_profile postgres
3326; 1259 16539 INDEX healthcare sat_patient_profile_idx postgres
`
	// The dump ids of pg_dump -t differ from the full dump's; the rest of each line does not.
	const tables = `;
12; 1259 16526 TABLE healthcare sat_patient_profile postgres
13; 0 0 COMMENT healthcare TABLE sat_patient_profile postgres
14; 1259 16539 INDEX healthcare sat_patient_profile_idx postgres
`
	d := &dependencies{objects: map[catalogObject]objectInfo{
		{pgNamespaceOID, 16385}: {schema: "vault_types"},
		{3079, 16388}:           {schema: "ext", extension: "citext"},
		{1247, 16494}:           {schema: "vault_types"},
		{pgClassOID, 16521}:     {schema: "vault_types", sequence: "vault_types.visit_no_seq"},
	}}

	t.Run("keeps the tables' entries and the dependencies with their comments, in order", func(t *testing.T) {
		got, err := filterTOC([]byte(full), []byte(tables), d)
		require.NoError(t, err)
		require.Equal(t, `2; 3079 16388 EXTENSION - citext 
897; 1247 16494 TYPE vault_types patient_status postgres
3476; 0 0 COMMENT vault_types TYPE patient_status postgres
220; 1259 16521 SEQUENCE vault_types visit_no_seq postgres
222; 1259 16526 TABLE healthcare sat_patient_profile postgres
3479; 0 0 COMMENT healthcare TABLE sat_patient_profile postgres
3326; 1259 16539 INDEX healthcare sat_patient_profile_idx postgres
`, string(got), "no schema, no extension comment, no owner table, no sequence ownership, no other type")
	})

	t.Run("fails when an entry of the tables is not in the dump", func(t *testing.T) {
		_, err := filterTOC([]byte(full), []byte(tables+"15; 2606 16540 CONSTRAINT healthcare sat_patient_profile pkey postgres\n"), d)
		require.ErrorContains(t, err, "lacks 1 of the 4 entries")
	})
}
