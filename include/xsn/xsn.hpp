#pragma once
/// \file Umbrella header for the xsn core.
#include <xsn/config.hpp>
#include <xsn/model/statechart.hpp>
#include <xsn/parse/scxml.hpp>
#include <xsn/runtime/clock.hpp>
#include <xsn/runtime/datamodel.hpp>
#include <xsn/runtime/errors.hpp>
#include <xsn/runtime/event.hpp>
#include <xsn/runtime/session.hpp>
#include <xsn/runtime/value.hpp>
