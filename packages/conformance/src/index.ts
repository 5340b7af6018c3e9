/**
 * @hmmkit/conformance: the driver-model contract, the scenario library and its checkers, the
 * runner (exploration portfolio, shrinking, expectations) and the reporters.
 *
 * @packageDocumentation
 */
export {
  BudgetError,
  defaultKitBudget,
  formatBudget,
  type KitBudget,
  parseBudget,
  validateBudget,
} from './budget.js';
export * from './contract.js';
export {
  EXPECTATIONS_SCHEMA,
  type ExpectationEntry,
  type Expectations,
  ExpectationsError,
  expectationFor,
  parseExpectations,
  type StaleExpectation,
  staleExpectations,
} from './expectations.js';
export { findExpectationsFile, loadExpectations } from './expectations-file.js';
export { KitViolation, violationKinds } from './kinds.js';
export { formatPowerTable, measurePower, type PowerCell, type PowerOptions, type PowerRow } from './power.js';
export {
  CONFORM_SCHEMA,
  type ConformanceReport,
  type ConformanceSummary,
  type ExplorationSummary,
  type FailureReport,
  reportToJson,
  type ScenarioResult,
  type ScenarioStatus,
  summarize,
  type VariantVerdict,
} from './report.js';
export { type JunitOptions, toJunitXml } from './reporters/junit.js';
export {
  type Colors,
  formatFailure,
  formatResultLine,
  formatText,
  noColors,
  type TextOptions,
} from './reporters/text.js';
export {
  type ConformanceOptions,
  type DriverRun,
  defaultPortfolio,
  KitUsageError,
  type ProgressEvent,
  type ReplayOutcome,
  replayCommand,
  replayScenario,
  runConformance,
  runConformanceAsync,
  runScenario,
  type ScenarioRunOptions,
} from './runner.js';
export { type Requirement, type Scenario, scenarioProgram, skipReason } from './scenario.js';
export { findScenario, scenarios } from './scenarios/library.js';
export { type ShrinkOptions, type ShrinkResult, shrinkSchedule } from './shrink.js';
export { CAPABILITIES, capabilityNames, validateDriver, validateInstance } from './validate.js';
export { Device, MAPPING_BASE, World } from './world.js';
