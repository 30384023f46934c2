"""Drills (§5.3 培训保障): the Office runs a scenario as a drill incident, on scaled clocks.

- `scenario`: the scenario file (the incident as it came, and the steps people took when);
- `report`: who acted when against the drill's deadlines;
- `simulate`: the same scenarios unattended on the time-skipping server, under any policy.

A drill is an ordinary incident marked as one (`IncidentReport.drill`): its policy's clocks run
`speed` times faster, every line and notice is marked 演练, and its notices, statements and
evidence go to the drill sink (`activities/drill_sink.py`), never to a real channel.
"""
