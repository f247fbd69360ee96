package source

import (
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// debounce is how long the files must hold still after a change before they are read: editors
// write in several steps, and a half-written file would be refused for nothing.
const debounce = 100 * time.Millisecond

// Watch reads the flag files again when one changes, until stop is called. It watches their
// directories, since editors and config management replace a file by renaming another over it,
// and Kubernetes swaps a symlink beside it. A file added later by SetFiles is watched from then on.
func (s *Source) Watch() (stop func(), err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.watcher = w
	s.watchDirs()
	s.mu.Unlock()
	done := make(chan struct{})
	go (&fileWatcher{src: s, w: w}).run(done)
	return func() {
		s.mu.Lock()
		s.watcher = nil
		s.mu.Unlock()
		w.Close()
		<-done
	}, nil
}

// watchDirs adds the directories of the flag files to the watcher. s.mu must be held.
func (s *Source) watchDirs() {
	if s.watcher == nil {
		return
	}
	for _, f := range s.files {
		if err := s.watcher.Add(filepath.Dir(f.path)); err != nil {
			s.log.Warn("cannot watch a flag file's directory; reload the config to read it again", "file", f.path, "err", err)
		}
	}
}

// fileWatcher turns file events into reloads; a named type for readable stack traces.
type fileWatcher struct {
	src *Source
	w   *fsnotify.Watcher
}

func (fw *fileWatcher) run(done chan struct{}) {
	defer close(done)
	var timer <-chan time.Time
	for {
		select {
		case ev, ok := <-fw.w.Events:
			if !ok {
				return
			}
			if ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Remove) != 0 {
				timer = time.After(debounce)
			}
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			fw.src.log.Warn("flag file watch error", "err", err)
		case <-timer:
			timer = nil
			fw.src.Reload() // reads every file; one whose bytes did not change costs a read
		}
	}
}
