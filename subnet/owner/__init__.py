"""Subnet owner tools: the offline Yuma simulator (and, later, subnet management commands)."""
