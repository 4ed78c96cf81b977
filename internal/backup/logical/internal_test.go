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
