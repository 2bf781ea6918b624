"""Generic JSON with a user-written YAML field mapping, for sources without a connector.

Active only when configured: ``SOC_AGENT_GENERIC_MAPPING=/path/mapping.yml`` or
``connectors.registry.register_generic(path)``. See ``connectors.generic.mapping``
for the YAML.
"""

from connectors.generic.mapping import GenericMapping, GenericMappingError, load_mapping

__all__ = ["GenericMapping", "GenericMappingError", "load_mapping"]
