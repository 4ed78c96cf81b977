package demodata

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
)

// ChangedTables returns the tables Change writes to: new rows in the two satellites and
// updates of the mutable settings table. Hubs, links and reference data are never touched.
func ChangedTables() []string {
	return []string{SatPatientDemographics, SatEncounterClinical, TenantSetting}
}

// Change modifies about fraction (e.g. 0.01) of the dataset's rows, for the incremental
// backup benchmark, and returns the rows it touched. The changes are clustered, as a day's
// work on a real platform is: new satellite rows (a new address and payload for patients,
// an addendum to the notes of encounters) with one load_date newer than every existing
// one, for the entities with the smallest hash keys, so that they land together in the
// satellites' primary key indexes and at the end of their heaps; plus updates of a tenth
// of the budget (at most every row) in tenant_setting, which has no load_date. It runs in
// one transaction.
func Change(ctx context.Context, connString string, fraction float64) (int64, error) {
	if !(fraction > 0 && fraction <= 1) {
		return 0, fmt.Errorf("demodata: fraction must be in (0, 1], got %v", fraction)
	}
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return 0, fmt.Errorf("demodata: parse connection string: %w", err)
	}
	cfg.RuntimeParams["application_name"] = "readiness-demodata"
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return 0, fmt.Errorf("demodata: connect: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))

	var touched int64
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		src, err := detectPayloadSource(ctx, tx)
		if err != nil {
			return err
		}
		counts := map[string]int64{}
		for _, t := range Tables() {
			var n int64
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+t).Scan(&n); err != nil {
				return err
			}
			counts[t] = n
		}
		var total int64
		for _, n := range counts {
			total += n
		}
		patients, encounters, settings := counts[HubPatient], counts[HubEncounter], counts[TenantSetting]
		budget := int64(math.Round(fraction * float64(total)))
		if budget == 0 {
			return nil
		}
		updates := min(settings, max(budget/10, 1))
		inserts := budget - updates
		patientRows := min(inserts/(1+encountersPerPatient), patients)
		encounterRows := min(inserts-patientRows, encounters)

		newest, err := maxLoadDate(ctx, tx)
		if err != nil {
			return err
		}
		var loadDate time.Time
		if err := tx.QueryRow(ctx, "SELECT greatest(now(), $1::timestamptz + interval '1 millisecond')", newest).Scan(&loadDate); err != nil {
			return err
		}

		for _, s := range []struct {
			sql  string
			args []any
		}{
			{`
INSERT INTO healthcare.sat_patient_demographics
    (patient_hk, load_date, hash_diff, tenant_hk, first_name, last_name, birth_date, address, payload, record_source)
SELECT hk, $1, sha256(convert_to(concat_ws('|', first_name, last_name, birth_date, address, payload), 'UTF8')),
       thk, first_name, last_name, birth_date, address, payload, '` + RecordSource + `'
FROM (
    SELECT h.patient_hk AS hk, h.tenant_hk AS thk, cur.first_name, cur.last_name, cur.birth_date,
           ` + addressSQL + ` AS address,
           ` + src.text(payloadMinChars, payloadMaxChars) + ` AS payload
    FROM (SELECT patient_hk, tenant_hk FROM healthcare.hub_patient ORDER BY patient_hk LIMIT $2) AS h
    LEFT JOIN LATERAL (
        SELECT first_name, last_name, birth_date FROM healthcare.sat_patient_demographics AS s
        WHERE s.patient_hk = h.patient_hk ORDER BY s.load_date DESC LIMIT 1
    ) AS cur ON true
) AS s`, []any{loadDate, patientRows}},
			{`
INSERT INTO healthcare.sat_encounter_clinical (encounter_hk, load_date, hash_diff, tenant_hk, diagnosis_code, notes, record_source)
SELECT hk, $1, sha256(convert_to(diagnosis_code || '|' || notes, 'UTF8')), thk, diagnosis_code, notes, '` + RecordSource + `'
FROM (
    SELECT h.encounter_hk AS hk, h.tenant_hk AS thk, coalesce(cur.diagnosis_code, 'A00.0') AS diagnosis_code,
           ` + src.text(notesMinChars, notesMaxChars) + ` AS notes
    FROM (SELECT encounter_hk, tenant_hk FROM healthcare.hub_encounter ORDER BY encounter_hk LIMIT $2) AS h
    LEFT JOIN LATERAL (
        SELECT diagnosis_code FROM healthcare.sat_encounter_clinical AS s
        WHERE s.encounter_hk = h.encounter_hk ORDER BY s.load_date DESC LIMIT 1
    ) AS cur ON true
) AS s`, []any{loadDate, encounterRows}},
			{`
UPDATE healthcare.tenant_setting AS s
SET setting_value = ` + src.text(settingMinChars, settingMaxChars) + `, updated_at = $1
FROM (SELECT tenant_hk, setting_key FROM healthcare.tenant_setting ORDER BY tenant_hk, setting_key LIMIT $2) AS p
WHERE s.tenant_hk = p.tenant_hk AND s.setting_key = p.setting_key`, []any{loadDate, updates}},
		} {
			tag, err := tx.Exec(ctx, s.sql, s.args...)
			if err != nil {
				return err
			}
			touched += tag.RowsAffected()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("demodata: change: %w", err)
	}
	return touched, nil
}
