#!/bin/sh
# One-off job (compose service temporal-namespace), once the frontend answers: the namespace
# with its retention, and the search attributes Yuqing's incidents keep current
# (yuqing/search_attributes.py). Safe to run again.
set -eu
: "${TEMPORAL_ADDRESS:?}" "${TEMPORAL_NAMESPACE:=default}" "${RETENTION:=30d}"
until temporal operator cluster health --address "$TEMPORAL_ADDRESS" | grep -q SERVING; do
  echo "waiting for the Temporal frontend at $TEMPORAL_ADDRESS"; sleep 2
done
if temporal operator namespace describe -n "$TEMPORAL_NAMESPACE" >/dev/null 2>&1; then
  temporal operator namespace update -n "$TEMPORAL_NAMESPACE" --retention "$RETENTION"
else
  temporal operator namespace create -n "$TEMPORAL_NAMESPACE" --retention "$RETENTION"
fi
for attribute in IncidentGrade:Keyword IncidentStage:Keyword IncidentSensitivity:Keyword \
                 IncidentUnit:Keyword DeadlineBreached:Bool; do
  temporal operator search-attribute create -n "$TEMPORAL_NAMESPACE" \
    --name "${attribute%%:*}" --type "${attribute##*:}" || true  # exists already
done
