// Package source keeps the flag set Aviary serves and says when it changes. The set in force is
// Merge(files..., API flags, layers...) with the kill switch's states on top:
//
//   - files: flagd JSON documents named in the config (flags.files), read at start and whenever
//     one changes (watched like the config file). A file that does not parse is refused with the
//     parser's JSON path; that file's last good content stays in force, and the refusal is logged
//     and shown in Status until the file is fixed.
//   - API flags: flags set through the admin API, kept in the store (they survive kill -9) and
//     overriding a file flag of the same key.
//   - layers: named sets that other parts of Aviary put on top per flag (a flag rollout's weights),
//     through SetLayer; the seam for what drives a flag besides people.
//   - kill-switch states: Disable and Enable set a flag's state whatever its source; the state is
//     stored, and recorded as an event with who did it. A disabled flag is served as flagd serves
//     one: reason DISABLED and no value, so every SDK returns the default written in its code.
//
// Readers take Current (an immutable *flags.Set; no lock) and wait on Changed, which is closed when
// a new set is in force. Every change goes through one mutex and is written to the store before the
// new set is published. The package never evaluates a flag: that is package flags.
package source
