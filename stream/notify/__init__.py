"""The response stage's I/O: the notify file on disk (`files`) and the deliverer (`delivery`).

The decisions are `correlator.notify`'s pure fold. What the agent that runs it still has to wire (issue 18):

* Inputs. `incidents`: `stream.incident_records.decode_incident_record(value, headers)` gives an
  `IncidentEvent`, `ParentEvent` or `Assignment`, each handed to `on_record(state, record, now, config,
  silences, policy)` with `now` the wall clock. `tickets.triaged`: `Escalation.from_value(value)` (None for
  ticket events, skipped). Acknowledgements: `POST /incidents/{id}/ack` stops the SLA clock only today; it
  must also publish an `Acknowledgement(incident_id, who, at)` for the notify agent.
* State to keep in changelog-backed tables: one `Subject.to_dict()` per subject id (write every id in
  `Step.changed`, delete the ids no longer in `state.subjects`), the rate-limit buckets and queues
  (`NotifyState.to_dict()` has their shape), silences (id -> `Silence`, purged with `silences.expired`), and an
  outbox of deliveries made and not yet finished (`Delivery.model_dump_json()`, removed on its `Outcome`),
  re-submitted to the `Deliverer` after a restart. The subject's write must reach the changelog before the
  input is acknowledged: then a crash repeats only identical deliveries (same lane and order; PagerDuty's
  dedup_key absorbs them; `tests/test_notify_storm.py`).
* Outputs. Each store's deliveries (`NotifyStore.decided`) go to the deliverer once its checkpoint is written;
  `on_outcome` removes the delivery from the outbox and sends a dead letter (`Outcome.reason`) to `deadletter`
  for the undeliverable.
* Timers. One tick (about 1 s): `NotifyFileWatcher.poll()`, then `on_tick(state, now, ...)`, sent the same way.
* Keys. A stage-1 incident's events and its assignment share its id, hence its partition; its cause is keyed by
  the cause's id, elsewhere: a cause's page names children it does not hold by id only, and an escalation or an
  acknowledgement of a grouped child comes back in `Step.forward`, re-addressed to its cause, to be sent to the
  partition of that id. Escalations arrive keyed `incident:<id>` on `tickets.triaged`: re-key them by the id.
"""
