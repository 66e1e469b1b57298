"""The validator: tasks, verification, scoring, weights, state, router, gateway and the loop."""
