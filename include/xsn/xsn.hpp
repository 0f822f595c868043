#pragma once
/// \file Umbrella header for the xsn core.
#include <xsn/config.hpp>
#include <xsn/model/statechart.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/core/clock.hpp>
#include <xsn/runtime/datamodel.hpp>
#include <xsn/core/errors.hpp>
#include <xsn/core/event.hpp>
#include <xsn/runtime/session.hpp>
#include <xsn/core/value.hpp>
