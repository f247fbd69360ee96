// The confirmation dialog every change goes through.
// confirm asks for a reason before a change; run is called with it and may throw an APIError,
// whose message is shown in the dialog (the change was refused). opts.extra is an element shown
// above the reason (a choice the change needs); opts.reasonLabel says where the reason goes.
export function confirmChange(text, run, opts = {}) {
  const dlg = document.getElementById('confirm');
  const reason = document.getElementById('reason');
  const err = document.getElementById('confirm-error');
  const ok = document.getElementById('confirm-ok');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-extra').replaceChildren(...(opts.extra ? [opts.extra] : []));
  document.getElementById('reason-label').textContent = opts.reasonLabel || 'Reason (recorded in the events)';
  err.textContent = '';
  reason.value = '';
  const form = document.getElementById('confirm-form');
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    if (!reason.value.trim()) { err.textContent = 'Say why: the reason is recorded with the change.'; return; }
    ok.disabled = true;
    try {
      await run(reason.value.trim());
      dlg.close();
    } catch (e) {
      err.textContent = e.message;
    } finally {
      ok.disabled = false;
    }
  };
  document.getElementById('confirm-cancel').onclick = () => dlg.close();
  dlg.showModal();
  reason.focus();
}

