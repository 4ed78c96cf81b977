// Package config reads the service's configuration from the environment. Secrets are kept
// out of String and out of every error message.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/onevault/readiness/internal/notify"
	"github.com/onevault/readiness/internal/wal"
)

// Config is the service's configuration.
type Config struct {
	ListenAddr         string
	DatabaseURL        string // the service's own database
	ManagedDatabaseURL string // the One Vault database that is backed up and watched
	JWTSecret          []byte
	JWKSURL            string
	JWTIssuer          string
	JWTAudience        string
	EncryptionKey      string
	StorageType        string
	StoragePath        string
	RetentionYears     int
	RateLimit          int // requests a minute per tenant
	MonitoringEnabled  bool
	AlertRecipients    []string
	SlackWebhookURL    string
	TenantKeyColumn    string        // the managed database's tenant column; TENANT backups take rows by it
	BackupWorkers      int           // jobs this process runs at once; 0 serves the API only
	RescueAfter        time.Duration // a running backup whose progress is still this long is taken for dead
	JobTimeout         time.Duration // the longest a backup or verification may run
	BackupMaxAttempts  int           // tries per backup, scheduled or not
	SchedulerEnabled   bool          // whether this replica takes part in firing schedules
	ScheduleSyncEvery  time.Duration // how often schedules are re-read from the store
	SMTP               notify.SMTPConfig
	RecoveryDataPath   string // where recovered instances' data directories are made
	RestoreCommand     string // restore_command of recovered instances (readiness wal-fetch ...)
	WALStream          bool   // stream the managed cluster's WAL into the archive through a replication slot
	WALStreamConn      string // the replication connection for it; MANAGED_DATABASE_URL when empty
	WALStreamSlot      string // the physical replication slot it uses
}

// Defaults are the values used when a variable is not set.
func Defaults() Config {
	return Config{
		ListenAddr:        "127.0.0.1:8080",
		StorageType:       "LOCAL",
		StoragePath:       "./backups",
		RetentionYears:    7,
		RateLimit:         100,
		MonitoringEnabled: true,
		TenantKeyColumn:   "tenant_hk",
		BackupWorkers:     2,
		RescueAfter:       time.Minute,
		JobTimeout:        12 * time.Hour,
		BackupMaxAttempts: 3,
		SchedulerEnabled:  true,
		ScheduleSyncEvery: 15 * time.Second,
		RecoveryDataPath:  "./recoveries",
		WALStreamSlot:     wal.DefaultSlot,
	}
}

// FromEnv reads the configuration of `readiness serve` from the environment, starting from
// base. It refuses, naming every missing or bad variable, when a required one is absent.
func FromEnv(base Config, getenv func(string) string) (Config, error) {
	c := base
	var problems []string
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	num := func(name string, dst *int, min int) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < min {
				problems = append(problems, fmt.Sprintf("%s must be an integer >= %d", name, min))
				return
			}
			*dst = n
		}
	}
	str("LISTEN_ADDR", &c.ListenAddr)
	str("DATABASE_URL", &c.DatabaseURL)
	if c.DatabaseURL == "" && getenv("BACKUP_DB_HOST") != "" {
		u := url.URL{Scheme: "postgres", Host: getenv("BACKUP_DB_HOST"), Path: "/" + getenv("BACKUP_DB_NAME")}
		if p := getenv("BACKUP_DB_PORT"); p != "" {
			u.Host += ":" + p
		}
		if user := getenv("BACKUP_DB_USER"); user != "" {
			if pw := getenv("BACKUP_DB_PASSWORD"); pw != "" {
				u.User = url.UserPassword(user, pw)
			} else {
				u.User = url.User(user)
			}
		}
		c.DatabaseURL = u.String()
	}
	str("MANAGED_DATABASE_URL", &c.ManagedDatabaseURL)
	if v := getenv("JWT_SECRET"); v != "" {
		c.JWTSecret = []byte(v)
	}
	str("JWKS_URL", &c.JWKSURL)
	str("JWT_ISSUER", &c.JWTIssuer)
	str("JWT_AUDIENCE", &c.JWTAudience)
	str("ENCRYPTION_KEY", &c.EncryptionKey)
	str("BACKUP_STORAGE_TYPE", &c.StorageType)
	str("BACKUP_STORAGE_PATH", &c.StoragePath)
	num("BACKUP_RETENTION_YEARS", &c.RetentionYears, 1)
	num("API_RATE_LIMIT", &c.RateLimit, 1)
	boolean := func(name string, dst *bool) {
		if v := getenv(name); v != "" {
			b, err := parseSwitch(v)
			if err != nil {
				problems = append(problems, name+" must be on or off (true or false)")
				return
			}
			*dst = b
		}
	}
	boolean("MONITORING_ENABLED", &c.MonitoringEnabled)
	if v := getenv("ALERT_EMAIL_RECIPIENTS"); v != "" {
		for _, r := range strings.Split(v, ",") {
			if r = strings.TrimSpace(r); r != "" {
				c.AlertRecipients = append(c.AlertRecipients, r)
			}
		}
	}
	str("SLACK_WEBHOOK_URL", &c.SlackWebhookURL)
	str("TENANT_KEY_COLUMN", &c.TenantKeyColumn)
	str("RECOVERY_DATA_PATH", &c.RecoveryDataPath)
	str("RESTORE_COMMAND", &c.RestoreCommand)
	num("BACKUP_WORKERS", &c.BackupWorkers, 0)
	dur := func(name string, dst *time.Duration) {
		if v := getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d < time.Second {
				problems = append(problems, name+" must be a duration such as 90s or 6h")
				return
			}
			*dst = d
		}
	}
	dur("BACKUP_RESCUE_AFTER", &c.RescueAfter)
	dur("BACKUP_JOB_TIMEOUT", &c.JobTimeout)
	dur("SCHEDULE_SYNC_INTERVAL", &c.ScheduleSyncEvery)
	num("BACKUP_MAX_ATTEMPTS", &c.BackupMaxAttempts, 1)
	boolean("SCHEDULER_ENABLED", &c.SchedulerEnabled)
	boolean("WAL_STREAM", &c.WALStream)
	str("WAL_STREAM_URL", &c.WALStreamConn)
	str("WAL_STREAM_SLOT", &c.WALStreamSlot)
	if c.WALStream && c.WALStreamConn == "" && c.ManagedDatabaseURL == "" {
		problems = append(problems, "WAL_STREAM needs WAL_STREAM_URL or MANAGED_DATABASE_URL")
	}

	if smtp, err := notify.SMTPConfigFromEnv(getenv); err != nil {
		problems = append(problems, err.Error())
	} else if smtp.Enabled() {
		c.SMTP = smtp
	}
	if c.DatabaseURL == "" {
		problems = append(problems, "DATABASE_URL (or BACKUP_DB_HOST, BACKUP_DB_NAME, ...) is required")
	}
	if len(c.JWTSecret) == 0 && c.JWKSURL == "" {
		problems = append(problems, "JWT_SECRET or JWKS_URL is required")
	}
	if len(c.JWTSecret) > 0 && len(c.JWTSecret) < 32 {
		problems = append(problems, "JWT_SECRET must be at least 32 bytes")
	}
	if c.EncryptionKey == "" {
		problems = append(problems, "ENCRYPTION_KEY is required: backups are always encrypted")
	}
	if !strings.EqualFold(c.StorageType, "LOCAL") {
		problems = append(problems, "BACKUP_STORAGE_TYPE supports only LOCAL")
	}
	if len(problems) > 0 {
		return c, errors.New("configuration: " + strings.Join(problems, "; "))
	}
	return c, nil
}

// parseSwitch reads a boolean setting: on/off, yes/no, or what strconv.ParseBool takes.
func parseSwitch(v string) (bool, error) {
	switch strings.ToLower(v) {
	case "on", "yes":
		return true, nil
	case "off", "no":
		return false, nil
	}
	return strconv.ParseBool(v)
}

// Environ is os.Getenv, the getenv of production.
func Environ(name string) string { return os.Getenv(name) }

// String describes the configuration with every secret masked, for the start-up log.
func (c Config) String() string {
	set := func(b bool) string {
		if b {
			return "set"
		}
		return "unset"
	}
	return fmt.Sprintf("listen=%s database=%s managed=%s jwt_secret=%s jwks=%s encryption_key=%s storage=%s:%s retention_years=%d rate_limit=%d slack_webhook=%s workers=%d scheduler=%t wal_stream=%t smtp=%s",
		c.ListenAddr, redactURL(c.DatabaseURL), redactURL(c.ManagedDatabaseURL), set(len(c.JWTSecret) > 0),
		set(c.JWKSURL != ""), set(c.EncryptionKey != ""), c.StorageType, c.StoragePath, c.RetentionYears,
		c.RateLimit, set(c.SlackWebhookURL != ""), c.BackupWorkers, c.SchedulerEnabled, c.WALStream, c.SMTP.String())
}

// redactURL drops the password of a database URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || s == "" {
		return ""
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.Redacted()
}
