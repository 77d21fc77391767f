/**
 * The registry config file's default name, apart from the config module so that commands which
 * only need the name (every host command resolves its settings through cli/settings.ts) do not
 * load the YAML and schema code.
 */
export const DEFAULT_CONFIG_FILE = "templar-registry.yaml";
