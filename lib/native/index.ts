// The one door to the addon: everything in lib/ that calls native code imports it from here.
export * from './binding';
export * from './jobs';
