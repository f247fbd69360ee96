package server

import (
	"bytes"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch reloads when the config file changes. It watches the directory, because editors and config
// management replace a file (rename over it) rather than write it in place; a burst of events within
// debounce is one reload, and an unchanged file is no reload. Events on other names in the directory
// count too: a Kubernetes ConfigMap volume changes the file by swapping the "..data" symlink that its
// path goes through, and the file's own name sees no event at all.
func (f *configFile) watch(enabled bool) (stop func()) {
	if !enabled {
		return func() {}
	}
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(filepath.Dir(f.path))
	}
	if err != nil {
		f.log.Warn("cannot watch the config file; reload with SIGHUP or POST /api/v1/config/reload", "err", err)
		return func() {}
	}
	done := make(chan struct{})
	go (&fileWatcher{file: f, w: w}).run(done)
	return func() { w.Close(); <-done }
}

const debounce = 200 * time.Millisecond

// fileWatcher turns file events into reloads; a named type for readable stack traces.
type fileWatcher struct {
	file *configFile
	w    *fsnotify.Watcher
}

func (fw *fileWatcher) run(done chan struct{}) {
	defer close(done)
	name := filepath.Clean(fw.file.path)
	var timer <-chan time.Time
	for {
		select {
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			// The file itself: wait until its writes settle. Another name: look once, so that a busy
			// neighbour in the directory cannot put the look off for ever.
			changing := ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename) != 0
			if changing && (filepath.Clean(ev.Name) == name || timer == nil) {
				timer = time.After(debounce)
			}
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			fw.file.log.Warn("config file watch error", "err", err)
		case <-timer:
			timer = nil
			if fw.changed() {
				fw.file.log.Info("config file changed: reloading", "file", fw.file.path)
				fw.file.Reload()
			}
		}
	}
}

func (fw *fileWatcher) changed() bool {
	data, err := os.ReadFile(fw.file.path)
	if err != nil {
		return true // let Reload report it
	}
	fw.file.statusMu.Lock()
	defer fw.file.statusMu.Unlock()
	return !bytes.Equal(data, fw.file.seen)
}
