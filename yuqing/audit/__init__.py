"""The decision trail after the fact (SPEC §6): the PostgreSQL projection and its hash chain
(`projection`), the trail rebuilt from the Temporal history (`history`, `timeline`), and the
deadline compliance report across incidents (`compliance`)."""
