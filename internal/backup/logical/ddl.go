package logical

import (
	"bufio"
	"errors"
	"io"
	"regexp"
	"strings"
)

// ddlItem is one piece of a plain-format pg_dump script: either a session setting (SET ...,
// set_config) or the SQL of one archive entry (a table, an index, a constraint ...).
type ddlItem struct {
	session bool
	name    string // the entry's "Name: ...; Type: ..." header line, for reports
	sql     string
}

// entryHeader matches the second line of the three-line comment that pg_dump writes before
// every archive entry:
//
//	--
//	-- Name: hub_patient; Type: TABLE; Schema: healthcare; Owner: -
//	--
var entryHeader = regexp.MustCompile(`^-- (Data for )?Name: .*; Type: .*; Schema: `)

// metaCommand matches the psql meta-commands that pg_dump writes into plain scripts
// (\restrict and \unrestrict since 15.14, \connect), which only psql understands.
var metaCommand = regexp.MustCompile(`^\\(restrict|unrestrict|connect)\b`)

// sessionStatement matches the session settings that pg_dump writes at column 0 between
// entries, such as "SET default_table_access_method = heap;".
var sessionStatement = regexp.MustCompile(`^(SET [A-Za-z_.]+ = .*;|SELECT pg_catalog\.set_config\(.*\);)$`)

// splitDump cuts a plain-format pg_dump script into session settings and entries, so that
// they can be run one by one through pgx: pg_dump marks where each entry begins with its
// header comment. The script is small (definitions only), so it is read whole.
func splitDump(r io.Reader) ([]ddlItem, error) {
	var lines []string
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			lines = append(lines, strings.TrimSuffix(line, "\n"))
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
	}

	var items []ddlItem
	var name string
	var body []string
	flush := func() {
		sql := strings.TrimSpace(strings.Join(body, "\n"))
		body = body[:0]
		if sql == "" || onlyComments(sql) {
			return
		}
		items = append(items, ddlItem{name: name, sql: sql})
	}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if line == "--" && i+2 < len(lines) && lines[i+2] == "--" {
			if entryHeader.MatchString(lines[i+1]) {
				flush()
				name = strings.TrimPrefix(lines[i+1], "-- ")
				i += 2
				continue
			}
			if lines[i+1] == "-- PostgreSQL database dump complete" {
				flush()
				name = ""
				i += 2
				continue
			}
		}
		switch {
		case metaCommand.MatchString(line):
		case sessionStatement.MatchString(line):
			flush()
			items = append(items, ddlItem{session: true, name: name, sql: line})
		default:
			body = append(body, line)
		}
	}
	flush()
	return items, nil
}

// onlyComments reports whether sql holds nothing but -- comments, as the entries that
// pg_dump writes for objects it does not create (such as the public schema) do.
func onlyComments(sql string) bool {
	for line := range strings.SplitSeq(sql, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "--") {
			return false
		}
	}
	return true
}
