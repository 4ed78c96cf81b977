package apitest

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// HeldFile is a file replaced by a named pipe, so that a test can act at the exact moment the
// code under test reads that file (cancel its job, say): opening a pipe blocks the reader until
// the test writes, so no sleep has to guess when the reader got there.
type HeldFile struct {
	t    testing.TB
	path string
	data []byte
	mode os.FileMode
}

// HoldFile replaces the file at path by a named pipe that will serve the same bytes.
func HoldFile(t testing.TB, path string) *HeldFile {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("hold %s: %v", path, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("hold %s: %v", path, err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatalf("hold %s: %v", path, err)
	}
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatalf("hold %s: %v", path, err)
	}
	return &HeldFile{t: t, path: path, data: data, mode: fi.Mode().Perm()}
}

// WhileRead waits until the code under test opens the file, puts the regular file back (for
// whoever opens it next), calls during while the reader waits for its first byte, then gives it
// the file's bytes (or none, when empty is true). It fails the test when ended is closed first
// (the code under test returned without reading the file), or when nobody reads it within a
// minute.
func (h *HeldFile) WhileRead(ended <-chan struct{}, empty bool, during func()) {
	h.t.Helper()
	opened := make(chan *os.File, 1)
	go func() {
		w, err := os.OpenFile(h.path, os.O_WRONLY, 0) // returns once a reader has opened the pipe
		if err != nil {
			close(opened)
			return
		}
		opened <- w
	}()
	var w *os.File
	select {
	case w = <-opened:
	case <-ended:
		h.unblock(opened)
		h.t.Fatalf("the code under test ended without reading %s", h.path)
	case <-time.After(time.Minute):
		h.unblock(opened)
		h.t.Fatalf("nobody read %s within a minute", h.path)
	}
	if w == nil {
		h.t.Fatalf("open %s for writing failed", h.path)
	}
	// The reader holds the pipe open; a second reader of the same file (a verification reads
	// some objects twice) must find the whole file.
	h.restore()
	during()
	var werr error
	if !empty {
		_, werr = w.Write(h.data)
	}
	cerr := w.Close()
	if werr != nil || cerr != nil {
		h.t.Fatalf("serve %s: %v %v", h.path, werr, cerr)
	}
}

// unblock opens the pipe for reading itself, so the goroutine waiting to write can end.
func (h *HeldFile) unblock(opened <-chan *os.File) {
	r, err := os.OpenFile(h.path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err == nil {
		if w, ok := <-opened; ok {
			_ = w.Close()
		}
		_ = r.Close()
	}
	h.restore()
}

// restore puts the regular file back in place of the pipe, in one rename, so that nobody
// finds it missing or half written.
func (h *HeldFile) restore() {
	tmp := h.path + ".held"
	if err := os.WriteFile(tmp, h.data, h.mode); err != nil {
		h.t.Errorf("restore %s: %v", h.path, err)
		return
	}
	if err := os.Rename(tmp, h.path); err != nil {
		h.t.Errorf("restore %s: %v", h.path, err)
	}
}
