# sitecustomize.py: in-memory fixes that let Debian's az 2.45 drive PostgreSQL flexible server
# private endpoint connections. Put this directory on PYTHONPATH of az runs only
# (e2e/az_test.go does); /usr/bin/az keeps PYTHONPATH. Nothing on disk is changed.
# See shared/reference/az-cli.md section 1.
#
# 1. The "latest" profile pins MGMT_NETWORK to 2022-01-01, but Debian's azure-mgmt-network
#    23.0.0b1 has no v2022_01_01 package, so every `az network ...` command crashes while loading
#    its arguments (Azure/azure-cli#24745). Pin it to 2022-07-01, which the package ships. AAZ
#    commands (vnet create, private-endpoint create) still send their own api-version.
# 2. 2.45's private-endpoint-connection table knows only Microsoft.DBforPostgreSQL/servers;
#    flexibleServers came with Azure/azure-cli#27840. Register it through 2.45's own
#    _register_one_provider(), so URLs, methods and the approve/reject logic stay 2.45's code.
# 3. 2.45's `az role` reads `client.config.subscription_id`, but Debian's azure-mgmt-authorization
#    calls that attribute `_config`, so every `az role definition|assignment` command crashes
#    before it sends anything. Give the clients and their operation groups a `config` alias.

import importlib.abc
import sys

# Debian's /usr/lib/python3.11/sitecustomize.py, which this file shadows, installs apport's
# exception hook. Keep doing that.
try:
    import apport_python_hook
except ImportError:
    pass
else:
    apport_python_hook.install()

NETWORK_API_VERSION = "2022-07-01"
PG_FLEX_TYPE = "Microsoft.DBforPostgreSQL/flexibleServers"
PG_FLEX_API_VERSION = "2024-08-01"  # a Microsoft.DBforPostgreSQL version pglink serves
PLE_MODULE = "azure.cli.command_modules.network.private_link_resource_and_endpoint_connections.custom"


def _pin_network_profile(module):
    module.AZURE_API_PROFILES["latest"][module.ResourceType.MGMT_NETWORK] = NETWORK_API_VERSION


def _add_flexible_servers(module):
    original = module.register_providers

    def register_providers():
        original()
        # support_list_or_not=True: list via .../privateEndpointConnections.
        module._register_one_provider(PG_FLEX_TYPE, PG_FLEX_API_VERSION, True)

    module.register_providers = register_providers


ROLE_MODULE = "azure.cli.command_modules.role.custom"


def _alias_config(obj):
    cls = type(obj)
    if not hasattr(cls, "config") and hasattr(obj, "_config"):
        cls.config = property(lambda self: self._config)


def _role_config_alias(module):
    original = module._auth_client_factory

    def _auth_client_factory(*args, **kwargs):
        client = original(*args, **kwargs)
        _alias_config(client)
        for group in ("role_definitions", "role_assignments"):
            _alias_config(getattr(client, group))
        return client

    module._auth_client_factory = _auth_client_factory


# Patch each module right after it is first executed, so az processes that never load it pay nothing.
PATCHES = {
    "azure.cli.core.profiles._shared": _pin_network_profile,
    PLE_MODULE: _add_flexible_servers,
    ROLE_MODULE: _role_config_alias,
}


class _PatchingLoader(importlib.abc.Loader):
    def __init__(self, loader, patch):
        self._loader, self._patch = loader, patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        self._patch(module)


class _PatchingFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        patch = PATCHES.get(name)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self:
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                spec.loader = _PatchingLoader(spec.loader, patch)
                return spec
        return None


sys.meta_path.insert(0, _PatchingFinder())
