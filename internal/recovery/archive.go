package recovery

import (
	"context"
	"errors"
	"time"

	"github.com/onevault/readiness/internal/backup/physical"
	"github.com/onevault/readiness/internal/wal"
)

// maxCommitSearch bounds how many segments preflight reads backwards (with pg_waldump) to find
// the newest commit that replay can reach.
const maxCommitSearch = 64

// checkArchive refuses a target that replay from the backup whose manifest is last cannot
// reach in the archived WAL. Replay needs every segment from the backup's stop segment on,
// without a gap, up to a commit that follows the target (recovery_target_time stops only at a
// commit or abort); PostgreSQL would otherwise end recovery before the target with a FATAL.
// Three answers are told apart:
//   - a segment is missing after the backup: the target is outside the archived WAL, which
//     stops at the gap;
//   - the archive ends before the target: the target is outside the archived WAL (the WAL
//     after it has not been archived yet);
//   - the archive runs past the target without a commit after it: no commit follows it.
func checkArchive(ctx context.Context, cfg wal.Config, last *physical.Manifest, target time.Time) error {
	tli := uint32(last.Timeline)
	stop, err := wal.ParseLSN(last.StopLSN)
	if err != nil {
		return refuse(ErrPreflight, "", "the backup's stop LSN %q: %v", last.StopLSN, err)
	}
	segSize := last.WALSegmentSize
	names, err := wal.Segments(ctx, cfg, tli)
	if err != nil {
		return refuse(ErrPreflight, "", "the archived WAL cannot be read: %v", err)
	}
	archived := map[uint64]bool{}
	var newest uint64
	for _, n := range names {
		_, seg, err := wal.ParseSegmentName(n, segSize)
		if err != nil {
			continue
		}
		archived[seg] = true
		newest = max(newest, seg)
	}
	first := wal.SegmentOf(stop, segSize)
	end := first // the first segment after the backup that the archive lacks
	for archived[end] {
		end++
	}
	gap := end <= newest

	// The newest commit replay can reach: in the streamed part of the segment after the
	// contiguous run, or in the run itself, read backwards.
	commit, cerr := wal.Commit{}, error(wal.ErrNoCommit)
	if !gap {
		commit, cerr = wal.LatestCommit(ctx, cfg, tli, maxCommitSearch)
	} else {
		for seg := end; seg > first && seg+maxCommitSearch > end; seg-- {
			commit, cerr = wal.LastCommit(ctx, cfg, wal.SegmentName(tli, seg-1, segSize))
			if !errors.Is(cerr, wal.ErrNoCommit) {
				break
			}
		}
	}
	if cerr != nil && !errors.Is(cerr, wal.ErrNoCommit) {
		return refuse(ErrPreflight, "", "the archived WAL cannot be read: %v", cerr)
	}
	if cerr == nil && commit.Time.After(target) {
		return nil
	}
	reached := "the archive holds no commit after the backup"
	if cerr == nil {
		reached = "the newest commit replay reaches is at " + commit.Time.UTC().Format(time.RFC3339Nano)
	}
	if gap {
		return refuse(ErrPreflight, "targetTimestamp", "targetTimestamp %s is outside the archived WAL: segment %s is missing from the archive, so replay from the backup stops before it; %s", target.UTC().Format(time.RFC3339Nano), wal.SegmentName(tli, end, segSize), reached)
	}
	st, err := wal.Check(ctx, cfg, "")
	if err != nil {
		return refuse(ErrPreflight, "", "the archived WAL cannot be read: %v", err)
	}
	var through time.Time
	for _, t := range st.Timelines {
		if t.Timeline != tli {
			continue
		}
		through = t.LastArchivedAt
		// The streaming receiver's part of the next segment is newer still.
		if t.Streamed != nil && t.Streamed.Segment == wal.SegmentName(tli, end, segSize) && t.Streamed.WrittenAt.After(through) {
			through = t.Streamed.WrittenAt
		}
	}
	if through.Before(target) {
		return refuse(ErrPreflight, "targetTimestamp", "targetTimestamp %s is outside the archived WAL: the archive ends with WAL archived at %s, before the target; %s (wait until the WAL after the target is archived, or choose an earlier target)", target.UTC().Format(time.RFC3339Nano), through.UTC().Format(time.RFC3339Nano), reached)
	}
	return refuse(ErrPreflight, "targetTimestamp", "no commit follows targetTimestamp %s in the archived WAL (%s); recovery could not stop at the target", target.UTC().Format(time.RFC3339Nano), reached)
}
