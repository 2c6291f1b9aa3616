module.exports = { airwallexApiKey: '{vendored_key}' };
